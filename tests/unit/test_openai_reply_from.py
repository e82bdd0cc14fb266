from __future__ import annotations

from adapters.openai.responder import reply_from


def test_the_reply_joins_the_output_text_of_every_message_and_keeps_usage_and_ids() -> None:
    response = {
        "id": "resp_1",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "content": [{"type": "output_text", "text": "Hello, "}]},
            {
                "type": "message",
                "id": "msg_2",
                "content": [{"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": "world"}],
            },
        ],
        "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
    }

    reply = reply_from(response)

    assert (reply.text, reply.response_id, reply.input_tokens, reply.output_tokens, reply.last_item_id) == (
        "Hello, world",
        "resp_1",
        12,
        3,
        "msg_2",
    )


def test_an_answer_without_output_or_usage_is_an_empty_reply() -> None:
    reply = reply_from({"id": "resp_2", "output": [], "usage": None})
    assert (reply.text, reply.input_tokens, reply.last_item_id) == ("", None, None)
