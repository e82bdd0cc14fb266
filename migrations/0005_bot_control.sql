-- Human hand-off: the bot of a channel and of a conversation can be paused, a person from the team
-- replies instead, and a customer's message that came while the bot was paused waits, `held`, for a
-- person (or for the bot to resume). See reference-docs/database.md, "0005_bot_control".

ALTER TABLE phone_numbers ADD COLUMN IF NOT EXISTS bot text NOT NULL DEFAULT 'active'
    CONSTRAINT phone_numbers_bot_check CHECK (bot IN ('active', 'paused'));

ALTER TABLE conversations ADD COLUMN IF NOT EXISTS bot text NOT NULL DEFAULT 'active'
    CONSTRAINT conversations_bot_check CHECK (bot IN ('active', 'paused'));
-- A timed pause ends by itself at this time (NULL: until resumed).
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS bot_paused_until timestamptz;
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_paused_until_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_paused_until_check
    CHECK (bot_paused_until IS NULL OR bot = 'paused');

-- What the AI has seen of the conversation: every message up to this number (its last answer's). The next
-- turn tells it what came since and was not for it (a person's replies, the messages they answered).
-- Existing conversations: everything so far counts as seen.
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS ai_seen_sequence_no integer;
UPDATE conversations SET ai_seen_sequence_no = last_sequence_no WHERE ai_seen_sequence_no IS NULL;
ALTER TABLE conversations ALTER COLUMN ai_seen_sequence_no SET DEFAULT 0;
ALTER TABLE conversations ALTER COLUMN ai_seen_sequence_no SET NOT NULL;

-- Who wrote a message: the customer, the AI, or a person from the team (a reply through the API or an
-- echo of the business's own WhatsApp app). Existing rows: inbound ones are the customer's, outbound
-- ones the AI's (nobody else could write before this migration).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS sender text;
UPDATE messages SET sender = CASE direction WHEN 'inbound' THEN 'customer' ELSE 'ai' END WHERE sender IS NULL;
ALTER TABLE messages ALTER COLUMN sender SET NOT NULL;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_sender_check;
ALTER TABLE messages ADD CONSTRAINT messages_sender_check CHECK (
    (direction = 'inbound' AND sender = 'customer') OR (direction = 'outbound' AND sender IN ('ai', 'human')));

-- `held`: a customer's message stored while the bot was paused, waiting for a person.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check CHECK (status IN (
    'received', 'processing', 'answered', 'skipped', 'held',
    'pending', 'sending', 'sent', 'delivered', 'read', 'played',
    'failed'));

-- The Idempotency-Key of a person's reply: the same key in the same conversation is the same reply.
ALTER TABLE messages ADD COLUMN IF NOT EXISTS idempotency_key text;
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency_uidx ON messages (conversation_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- What the bot resumes with: a conversation's held messages, and the paused conversations whose
-- pause has run out (small: rows leave them once the bot resumes).
CREATE INDEX IF NOT EXISTS messages_held_conversation_idx ON messages (conversation_id, sequence_no)
    WHERE status = 'held';
CREATE INDEX IF NOT EXISTS messages_held_channel_idx ON messages (phone_number_id) WHERE status = 'held';
CREATE INDEX IF NOT EXISTS conversations_paused_until_idx ON conversations (bot_paused_until)
    WHERE bot_paused_until IS NOT NULL;
