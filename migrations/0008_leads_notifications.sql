-- Lead extraction, notifications and outgoing webhooks (issue 11).

-- An agent may name its own extraction prompt (an OpenAI dashboard prompt); none: the built-in instructions.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS extraction_prompt_id text;

-- A conversation's extraction state (domain/extraction.py, LeadActivity): read up to which message, claimed
-- by a worker until when, how many tries failed since the last success and why.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS extracted_through_sequence_no integer NOT NULL DEFAULT 0;
-- Conversations from before this release count as read: upgrading must not send every old conversation to
-- OpenAI at once (a bill nobody asked for). Each is read after its next message, with its whole history.
UPDATE conversations SET extracted_through_sequence_no = last_sequence_no WHERE extracted_through_sequence_no = 0;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS extraction_claimed_until timestamptz;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS extraction_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS extraction_failure text;
-- Conversations with messages no extraction has read, by how long they have been quiet: the sweep's
-- "which are due" reads this index only.
CREATE INDEX IF NOT EXISTS conversations_extraction_due_idx ON conversations (last_message_at)
    WHERE last_sequence_no > extracted_through_sequence_no;

CREATE TABLE IF NOT EXISTS extractions (
    extraction_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    conversation_id      bigint NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    phone_number_id      text NOT NULL,
    through_sequence_no  integer NOT NULL,
    name                 text CHECK (char_length(name) <= 100),
    email                text CHECK (char_length(email) <= 255),
    company              text CHECK (char_length(company) <= 255),
    intent               text CHECK (char_length(intent) <= 100),
    urgency              smallint CHECK (urgency BETWEEN 1 AND 3),
    budget               smallint CHECK (budget BETWEEN 1 AND 3),
    fit                  smallint CHECK (fit BETWEEN 1 AND 3),
    engagement           smallint CHECK (engagement BETWEEN 1 AND 3),
    demo_datetime        timestamptz,
    -- The demo time's UTC offset as the customer gave it, in minutes: shown back in their time zone.
    demo_utc_offset_min  smallint,
    smart_notification   text CHECK (char_length(smart_notification) <= 500),
    -- Fields the AI left out or answered invalidly: {"field": "reason"}.
    missing              jsonb NOT NULL DEFAULT '{}',
    credits_charged      integer NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    response_id          text,
    input_tokens         integer,
    output_tokens        integer,
    created_at           timestamptz NOT NULL,
    CONSTRAINT extractions_once_per_reading UNIQUE (conversation_id, through_sequence_no)
);
CREATE INDEX IF NOT EXISTS extractions_conversation_idx ON extractions (conversation_id, extraction_id DESC);
CREATE INDEX IF NOT EXISTS extractions_user_idx ON extractions (user_id, extraction_id DESC);

-- An extraction's charge is in the ledger once.
ALTER TABLE credit_ledger ADD COLUMN IF NOT EXISTS extraction_id bigint REFERENCES extractions (extraction_id)
    ON DELETE SET NULL;
CREATE UNIQUE INDEX IF NOT EXISTS credit_ledger_extraction_uidx ON credit_ledger (extraction_id)
    WHERE extraction_id IS NOT NULL;
-- An account's latest top-up, found without walking every charge since (the sweep reads it for each account
-- to tell "credits low" once per top-up).
CREATE INDEX IF NOT EXISTS credit_ledger_top_up_idx ON credit_ledger (user_id, entry_id DESC) WHERE kind = 'top_up';

CREATE TABLE IF NOT EXISTS notification_settings (
    user_id           text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    -- Minimum scores of a hot lead: {"urgency": 3, "fit": 3}.
    hot_lead          jsonb NOT NULL,
    credits_low_at    integer NOT NULL CHECK (credits_low_at >= 0),
    updated_at        timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS notifications (
    notification_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN (
                         'smart_notification', 'demo_booked', 'demo_moved', 'hot_lead', 'credits_low',
                         'credits_exhausted', 'channel_failing', 'waiting_for_human')),
    title            text NOT NULL,
    dedup_key        text NOT NULL,
    conversation_id  bigint REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    phone_number_id  text,
    data             jsonb NOT NULL DEFAULT '{}',
    read_at          timestamptz,
    created_at       timestamptz NOT NULL,
    CONSTRAINT notifications_once UNIQUE (user_id, dedup_key)
);
-- Unread first, each newest first.
CREATE INDEX IF NOT EXISTS notifications_user_idx
    ON notifications (user_id, (read_at IS NOT NULL), notification_id DESC);

-- Failed sends of the last minutes, found without scanning the messages (failures are rare).
CREATE INDEX IF NOT EXISTS messages_failed_outbound_idx ON messages (updated_at)
    WHERE status = 'failed' AND direction = 'outbound';

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    user_id            text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    url                text NOT NULL,
    -- Encrypted like the channels' access tokens (TOKEN_ENCRYPTION_KEYS).
    secret             text NOT NULL,
    created_at         timestamptz NOT NULL,
    secret_rotated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    notification_id   bigint NOT NULL REFERENCES notifications (notification_id) ON DELETE CASCADE,
    event_id          text NOT NULL UNIQUE,
    url               text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'delivered', 'given_up')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz,
    claimed_until     timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_user_idx ON webhook_deliveries (user_id, delivery_id DESC);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS webhook_attempts (
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt_no   integer NOT NULL,
    at           timestamptz NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt_no)
);
