"""Alembic migrations shipped with the package; run by ``storage.migrate`` at start-up."""
