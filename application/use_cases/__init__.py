"""One use case per module: a frozen command in, ports in the constructor, the work in `__call__`."""
