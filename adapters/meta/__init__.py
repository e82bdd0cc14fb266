"""Meta's Graph API channels: sending replies and read receipts."""
