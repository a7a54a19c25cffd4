"""SQL storage (SQLAlchemy Core): one schema, Alembic migrations, SQLite and PostgreSQL."""
