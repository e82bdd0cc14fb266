"""Redis adapters: the client factory, locks with a holder's token, and the cache-aside caches."""
