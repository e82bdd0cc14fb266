"""In-memory adapters for every port: fast unit tests and the zero-setup dev mode."""
