-- Web chat (issue 10): the sites a widget may be embedded on, and a visitor's history found by
-- (widget, visitor) without a scan.

-- An empty list lets any site use the widget (domain/webchat.py, "which sites may embed the widget").
ALTER TABLE phone_numbers ADD COLUMN IF NOT EXISTS allowed_origins text[] NOT NULL DEFAULT '{}';

-- A visitor's conversations on a widget (across relinks, which archive one and start another).
CREATE INDEX IF NOT EXISTS conversations_channel_customer_idx ON conversations (phone_number_id, customer_id);
