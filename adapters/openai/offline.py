"""AIResponder and LeadExtractor used without an OPENAI_API_KEY (dev mode, or an explicit opt-in): they
answer at once, without the network, and say they are offline."""

from __future__ import annotations

import itertools
import re

from application.ports.leads import ExtractionAnswer, ExtractionRequest
from application.ports.services import AIRequest
from domain.extraction import FIELDS, SCORE_FIELDS
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


#: Leads every offline smart notification, so nobody takes it for a reading of the conversation.
OFFLINE_EXTRACTOR_LABEL = "[offline extractor — no OPENAI_API_KEY set]"

# Only the customer's lines are read: the agent's own "I'm Ava" or "write to sales@…" is not the lead.
_CUSTOMER_LINE = re.compile(r"^\[[^\]]*\] Customer: (.*)$", re.MULTILINE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NAME = re.compile(r"\b(?:(?i:my name is)|I'm|I am)\s+([A-Z][\w'-]*(?: [A-Z][\w'-]*)?)")


class OfflineExtractor:
    """A few plain rules instead of a model: the first e-mail address and the name after "I'm" or "my
    name is" in the customer's lines, every score 2 (unknown, in the middle), nothing else guessed."""

    label = "offline"
    available = True

    def extract(self, request: ExtractionRequest) -> ExtractionAnswer:
        said = _CUSTOMER_LINE.findall(request.transcript)
        text = "\n".join(said)
        email = _EMAIL.search(text)
        name = _NAME.search(text)
        fields: dict[str, object] = dict.fromkeys(FIELDS)
        fields.update(dict.fromkeys(SCORE_FIELDS, 2))
        fields["email"] = email.group(0) if email else None
        fields["name"] = name.group(1) if name else None
        last = f" Last customer message: {said[-1][:200]}" if said else ""
        fields["smart_notification"] = f"{OFFLINE_EXTRACTOR_LABEL}{last}"
        return ExtractionAnswer(fields=fields, response_id=None, input_tokens=None, output_tokens=None)
