"""The HTTP edge: webhooks and the management REST API."""
