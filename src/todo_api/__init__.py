"""Todo API: a multi-user task service on FastAPI, SQLModel and async SQLAlchemy."""

__version__ = "0.1.0"
