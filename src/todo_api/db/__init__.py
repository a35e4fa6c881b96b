"""Persistence: database URLs, the connection pool and executor, migrations."""
