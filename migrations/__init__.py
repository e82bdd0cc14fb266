"""The schema migrations: plain SQL files applied in name order by `adapters.postgres.migrations`."""
