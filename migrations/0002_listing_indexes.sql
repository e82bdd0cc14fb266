-- Indexes for the filters of the messages listing (GET /users/{user_id}/messages) that 0001 left to
-- a scan of the tenant's whole history. See reference-docs/database.md, "Query patterns".

-- status=...: newest first among the tenant's messages of one status (failed ones are rare, so
-- walking messages_user_idx and filtering reads most of the history before finding a page).
CREATE INDEX messages_user_status_idx ON messages (user_id, status, message_id DESC);

-- since/until: a window far in the past is found directly instead of skipping every newer message.
CREATE INDEX messages_user_created_idx ON messages (user_id, created_at);

-- customer_id=...: the customer's conversations (active and archived) of one tenant.
CREATE INDEX conversations_user_customer_idx ON conversations (user_id, customer_id);
