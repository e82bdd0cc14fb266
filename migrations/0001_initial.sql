-- The initial schema: tenants, channels, agents, conversations, messages, AI turns, credits.
-- Differences from the seed's schema and why are listed in reference-docs/database.md.

CREATE TABLE users (
    user_id       text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    company_name  text,
    api_key_hash  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phone_numbers (
    phone_number_id  text PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    type             text NOT NULL CHECK (type IN ('whatsapp', 'instagram', 'webchat')),
    external_number  text NOT NULL,
    access_token     text NOT NULL,
    display_name     text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_user_idx ON phone_numbers (user_id, created_at);

CREATE TABLE agents (
    agent_id         text PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    phone_number_id  text NOT NULL REFERENCES phone_numbers (phone_number_id) ON DELETE CASCADE,
    name             text NOT NULL,
    prompt_id        text NOT NULL,
    prompt_version   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_one_per_channel UNIQUE (phone_number_id)
);
CREATE INDEX agents_user_idx ON agents (user_id, created_at);

CREATE TABLE conversations (
    conversation_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                   text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    agent_id                  text NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    phone_number_id           text NOT NULL REFERENCES phone_numbers (phone_number_id) ON DELETE CASCADE,
    customer_id               text NOT NULL,
    customer_name             text,
    openai_conversation_id    text,
    openai_last_item_id       text,
    is_active                 boolean NOT NULL DEFAULT true,
    last_sequence_no          integer NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now(),
    last_message_at           timestamptz NOT NULL DEFAULT now(),
    last_customer_message_at  timestamptz
);
-- One active conversation per agent and customer; archived ones may be many.
CREATE UNIQUE INDEX conversations_active_uidx ON conversations (agent_id, customer_id) WHERE is_active;
CREATE INDEX conversations_user_idx ON conversations (user_id, last_message_at DESC);
CREATE INDEX conversations_openai_idx ON conversations (openai_conversation_id);

CREATE TABLE turns (
    turn_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    conversation_id   bigint NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    phone_number_id   text NOT NULL,
    status            text NOT NULL CHECK (status IN ('awaiting_ai', 'replying', 'done', 'failed')),
    inbound_ids       bigint[] NOT NULL,
    credits_reserved  integer NOT NULL CHECK (credits_reserved >= 0),
    attempts          integer NOT NULL DEFAULT 0,
    response_id       text,
    input_tokens      integer,
    output_tokens     integer,
    failure_reason    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX turns_open_conversation_idx ON turns (conversation_id, turn_id) WHERE status IN ('awaiting_ai', 'replying');
CREATE INDEX turns_open_channel_idx ON turns (phone_number_id, turn_id) WHERE status IN ('awaiting_ai', 'replying');
CREATE INDEX turns_open_updated_idx ON turns (updated_at) WHERE status IN ('awaiting_ai', 'replying');

CREATE TABLE messages (
    message_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id              text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    conversation_id      bigint NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    phone_number_id      text NOT NULL,
    direction            text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sequence_no          integer NOT NULL,
    platform_message_id  text,
    content_type         text NOT NULL,
    text                 text,
    status               text NOT NULL CHECK (status IN (
                             'received', 'processing', 'answered', 'skipped',
                             'pending', 'sending', 'sent', 'delivered', 'read', 'played',
                             'failed')),
    failure_reason       text,
    failure_code         text,
    turn_id              bigint REFERENCES turns (turn_id) ON DELETE SET NULL,
    input_tokens         integer,
    output_tokens        integer,
    raw                  jsonb,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_sequence_uniq UNIQUE (conversation_id, sequence_no)
);
-- Dedup of platform redeliveries, and lookup of status updates.
CREATE UNIQUE INDEX messages_platform_id_uidx ON messages (phone_number_id, platform_message_id)
    WHERE platform_message_id IS NOT NULL;
-- The listing API: newest first per tenant, optionally per channel / status.
CREATE INDEX messages_user_idx ON messages (user_id, message_id DESC);
CREATE INDEX messages_user_channel_idx ON messages (user_id, phone_number_id, message_id DESC);
-- Pending work, per ordering scope; small because rows leave it once processed.
CREATE INDEX messages_received_conversation_idx ON messages (conversation_id, sequence_no) WHERE status = 'received';
CREATE INDEX messages_received_channel_idx ON messages (phone_number_id, message_id) WHERE status = 'received';
CREATE INDEX messages_received_age_idx ON messages (created_at) WHERE status = 'received';
CREATE INDEX messages_turn_idx ON messages (turn_id) WHERE turn_id IS NOT NULL;

CREATE TABLE credits (
    user_id     text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    balance     bigint NOT NULL DEFAULT 0,
    reserved    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credits_never_negative CHECK (reserved >= 0 AND balance >= reserved)
);

CREATE TABLE credit_ledger (
    entry_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('top_up', 'charge')),
    amount           bigint NOT NULL,
    balance_after    bigint NOT NULL,
    reason           text,
    turn_id          bigint REFERENCES turns (turn_id) ON DELETE SET NULL,
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_ledger_user_idx ON credit_ledger (user_id, entry_id DESC);
CREATE UNIQUE INDEX credit_ledger_idempotency_uidx ON credit_ledger (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A turn is charged at most once.
CREATE UNIQUE INDEX credit_ledger_turn_uidx ON credit_ledger (turn_id) WHERE kind = 'charge';

CREATE TABLE conversation_archives (
    archive_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    conversation_id  bigint NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    old_agent_id     text,
    new_agent_id     text REFERENCES agents (agent_id) ON DELETE SET NULL,
    phone_number_id  text NOT NULL,
    archived_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_archives_user_idx ON conversation_archives (user_id, archived_at DESC);
