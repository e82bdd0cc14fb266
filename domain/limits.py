"""How much of each value the service keeps, and which characters no kept text holds.

The edges that store what comes from outside take their bounds from here; reference-docs/database.md,
"Bounds", lists them. Lengths are counted in characters (Unicode code points) unless a name says bytes.
"""

from __future__ import annotations

import re

# --- identifiers ---------------------------------------------------------------------------------

#: A channel's id: Meta's phone-number id or Instagram account id (15 to 17 digits), or web chat's `wc_…`.
CHANNEL_ID = 64
#: A platform's message id: WhatsApp's `wamid.…` (about 60 characters), Instagram's `mid` (about 170).
PLATFORM_MESSAGE_ID = 512
#: A request's correlation id: the caller's (when it is plain enough) or one we make.
CORRELATION_ID = 128

# --- what could not be stored --------------------------------------------------------------------

#: Why something was rejected.
REJECTION_REASON = 1_000
#: The head of a rejected delivery kept for inspection; Meta's deliveries are at most 3 MB.
REJECTED_DELIVERY_BYTES = 256 * 1024

#: The replacement character (U+FFFD), put where a character could not be kept.
REPLACEMENT = "\ufffd"

# NUL, and UTF-16 surrogates on their own (a JSON "\ud800" without its pair decodes to one).
_UNKEPT = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with every NUL and lone surrogate replaced by U+FFFD.

    Neither is something a person wrote: NUL is a control character no stored text may hold (PostgreSQL
    refuses it in text and JSON alike), and a surrogate alone is half of a character, not Unicode text.
    Replaced rather than dropped, so that the text keeps its length and shows where something was, the
    way a decoder shows bytes it could not read.
    """
    return _UNKEPT.sub(REPLACEMENT, text)


def is_storable(text: str) -> bool:
    return _UNKEPT.search(text) is None
