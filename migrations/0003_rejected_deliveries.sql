-- What the webhook could not store, kept for inspection: a message of a delivery that was rejected
-- (a field over its bound, unreadable, refused by the database) or a signed body that is not a
-- delivery at all. See reference-docs/database.md, "rejected_deliveries".

CREATE TABLE rejected_deliveries (
    rejection_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at          timestamptz NOT NULL,
    reason               text NOT NULL CHECK (char_length(reason) <= 1000),
    phone_number_id      text,
    platform_message_id  text,
    correlation_id       text,
    -- The delivery's bytes as they came (invalid UTF-8 and NUL included), at most its first 256 KiB.
    body                 bytea NOT NULL CHECK (octet_length(body) <= 262144),
    body_size            integer NOT NULL CHECK (body_size >= octet_length(body))
);
-- Newest first for inspection, and the range a clean-up deletes.
CREATE INDEX rejected_deliveries_received_idx ON rejected_deliveries (received_at);
