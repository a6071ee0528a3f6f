"""Persistence behind small interfaces: keys and the usage ledger (SQLite or Postgres)."""
