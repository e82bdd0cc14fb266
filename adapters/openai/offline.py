"""AIResponder used without an OPENAI_API_KEY (dev mode, or an explicit opt-in): answers at once, says it is offline."""

from __future__ import annotations

import itertools

from application.ports.services import AIRequest
from domain.turns import AIReply

#: Leads every offline reply, so nobody mistakes it for the agent's answer.
OFFLINE_LABEL = "[offline responder — no OPENAI_API_KEY set]"


class OfflineResponder:
    label = "offline"
    available = True

    def __init__(self) -> None:
        # next() on itertools.count is atomic under the GIL, so worker threads never share an id.
        self._conversations = itertools.count(1)

    def start_conversation(self, *, metadata: dict[str, str]) -> str:
        return f"offline_conv_{next(self._conversations)}"

    def respond(self, request: AIRequest) -> AIReply:
        said = " / ".join(text.strip() for text in request.inputs)
        return AIReply(
            text=f"{OFFLINE_LABEL} You said: {said}", response_id=None, input_tokens=None, output_tokens=None
        )
