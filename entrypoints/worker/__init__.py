"""Worker side: RQ worker processes running scope jobs in-process, kept alive by a small supervisor."""
