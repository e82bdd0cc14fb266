"""Adapters of the web chat widget: its sender, visitor tokens, live signals and rate limits."""
