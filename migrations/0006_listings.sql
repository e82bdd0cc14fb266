-- Indexes for the conversations listing (GET /users/{user_id}/conversations): newest activity first,
-- keyset-paginated on (last_message_at, conversation_id). See reference-docs/database.md, "Query patterns".

-- The listing's order, ties included, read straight from the index (no sort of a group of equal
-- times). It serves everything conversations_user_idx served, so it replaces it: every message moves
-- last_message_at, and one index on it is cheaper to keep than two.
CREATE INDEX IF NOT EXISTS conversations_user_activity_idx
    ON conversations (user_id, last_message_at DESC, conversation_id DESC);
DROP INDEX IF EXISTS conversations_user_idx;

-- phone_number_id=...: one channel's conversations without walking the tenant's other channels.
CREATE INDEX IF NOT EXISTS conversations_user_channel_activity_idx
    ON conversations (user_id, phone_number_id, last_message_at DESC, conversation_id DESC);
