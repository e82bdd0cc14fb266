"""PostgreSQL adapters: connection pool, migration runner, repositories and the unit of work (psycopg 3, plain SQL)."""
