"""Todo API: a multi-user task service on FastAPI, SQLAlchemy Core and asyncpg."""

__version__ = "0.1.0"
