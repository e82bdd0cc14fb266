"""An AIResponder with replies written beforehand: `mcagent seed` answers its demo customers with it,
so that a demo database holds conversations that read like an agent's, without an OpenAI account."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from application.ports.services import AIRequest
from domain.turns import AIReply


class CannedResponder:
    label = "canned"
    available = True

    def __init__(self, replies: Mapping[str, str], fallback: str) -> None:
        """`replies`: the reply to a customer's message, by its text; `fallback` for any other."""
        self._replies = dict(replies)
        self._fallback = fallback
        self._conversations = itertools.count(1)

    def start_conversation(self, *, metadata: dict[str, str]) -> str:
        return f"canned_conv_{next(self._conversations)}"

    def respond(self, request: AIRequest) -> AIReply:
        text = self._replies.get(request.inputs[-1].strip(), self._fallback) if request.inputs else self._fallback
        return AIReply(text=text, response_id=None, input_tokens=None, output_tokens=None)
