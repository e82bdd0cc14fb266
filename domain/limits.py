"""How much of each value the service keeps, and which characters no kept text holds.

Every field the edges store from outside has a bound here, and the edges take it from here
(reference-docs/database.md, "Bounds", lists them). They are rules a business can state — "a
customer's message is at most 65,536 characters", "a company name is at most 200" — that the API's
documentation promises and that decide when a delivery's message is rejected or cut, not only storage
limits: the database's own (an index entry fits in about 2.7 kB) sit well above them. Lengths are
counted in characters (Unicode code points) unless a name says bytes.
"""

from __future__ import annotations

import re

# --- identifiers ---------------------------------------------------------------------------------

#: A channel's id: Meta's phone-number id or Instagram account id (15 to 17 digits), or web chat's `wc_…`.
CHANNEL_ID = 64
#: An id the service gives out (`usr_…`, `agt_…`): what a path may name.
ENTITY_ID = 64
#: A platform's message id: WhatsApp's `wamid.…` (about 60 characters), Instagram's `mid` (about 170).
PLATFORM_MESSAGE_ID = 512
#: A customer's id on a channel: a phone number, a business-scoped user id (Meta: up to 256), an IGSID.
CUSTOMER_ID = 256
#: A request's correlation id: the caller's (when it is plain enough) or one we make.
CORRELATION_ID = 128

# --- a customer's message ------------------------------------------------------------------------

#: The customer's name as the platform gives it; a longer one is cut, the message is still taken.
CUSTOMER_NAME = 256
#: A message's type (`text`, `image`, …).
CONTENT_TYPE = 64
#: A customer's text: WhatsApp's own apps let a customer send at most this much.
CUSTOMER_TEXT = 65_536
#: The platform's JSON of one message, kept as received, in UTF-8 bytes of its compact form: room for a
#: text at its bound with every character escaped (six bytes each), and the rest of the message beside it.
RAW_MESSAGE_BYTES = 512 * 1024
#: How deeply the platform's JSON of one message may nest; Meta's nest four or five levels.
RAW_MESSAGE_DEPTH = 32

# --- what a channel reports about our messages, or why it skipped one ----------------------------

#: A platform's error code (WhatsApp's are numbers of up to six digits); a longer one is cut.
FAILURE_CODE = 64
#: A platform's error text, or why a customer's message is not answered; a longer one is cut.
FAILURE_REASON = 1_000

# --- the management API --------------------------------------------------------------------------

EMAIL = 255
COMPANY_NAME = 200
#: A channel's label for people.
DISPLAY_NAME = 200
#: A channel's number, handle or (web chat) site.
EXTERNAL_NUMBER = 255
#: A Meta access token (about 200 characters; long-lived ones more).
ACCESS_TOKEN = 4_096
AGENT_NAME = 200
#: An OpenAI prompt id (`pmpt_` and 48 hex digits).
PROMPT_ID = 128
PROMPT_VERSION = 32
#: A person's reply through the API: four WhatsApp messages' worth (split as the channel needs).
HUMAN_REPLY_TEXT = 16_384
#: The longest timed pause of a conversation's bot, in minutes: a week.
PAUSE_MINUTES = 10_080
#: Why credits were added.
TOP_UP_REASON = 500
#: A caller's Idempotency-Key: UUIDs or similar.
IDEMPOTENCY_KEY = 255

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
