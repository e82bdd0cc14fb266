-- Agents without a channel, and soft deletion of agents and channels (RelinkAgent, DELETE of an agent or
-- a channel). Deleting a row would erase history: conversations reference both with ON DELETE CASCADE.
-- See reference-docs/database.md, "0004_relink".

-- An agent may exist unlinked; one agent per channel stays (agents_one_per_channel: NULLs are distinct).
ALTER TABLE agents ALTER COLUMN phone_number_id DROP NOT NULL;

ALTER TABLE agents ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
ALTER TABLE phone_numbers ADD COLUMN IF NOT EXISTS deleted_at timestamptz;

-- A deleted agent holds no channel (the domain unlinks it; this is the last guard).
ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_deleted_unlinked;
ALTER TABLE agents ADD CONSTRAINT agents_deleted_unlinked CHECK (deleted_at IS NULL OR phone_number_id IS NULL);
