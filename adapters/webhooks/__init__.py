"""Outgoing webhooks: the HTTP sender of a business's notifications."""
