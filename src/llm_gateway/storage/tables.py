"""The tables, as SQLAlchemy Core: the queries' view of the schema.

The migrations in ``migrations/versions`` create exactly this (a test compares them).
Times are Unix epoch seconds in double-precision columns, as in ``core.records``; text
columns have no length so a long client-chosen request id can never make a batch fail.
"""

from __future__ import annotations

import sqlalchemy as sa

# Named constraints, so the migrations and these tables agree on every dialect.
metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

# On SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

api_keys = sa.Table(
    "gateway_api_keys",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("key_hash", sa.String, nullable=False, unique=True),
    sa.Column("prefix", sa.String, nullable=False),
    sa.Column("owner", sa.String),
    sa.Column("team", sa.String),
    sa.Column("allowed_models", sa.JSON, nullable=False),
    sa.Column("rpm", sa.Integer),
    sa.Column("tpm", sa.BigInteger),
    sa.Column("budget", sa.Double),
    sa.Column("budget_period", sa.String, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double),
    sa.Column("revoked_at", sa.Double),
)

usage = sa.Table(
    "gateway_usage",
    metadata,
    sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String, nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("endpoint", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("key_id", sa.String),
    sa.Column("provider", sa.String),
    sa.Column("route_model", sa.String),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Double, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    sa.Column("ttft_ms", sa.Double),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("streamed", sa.Boolean, nullable=False),
    sa.Column("tokens_estimated", sa.Boolean, nullable=False),
    # The admin API filters by key, by model and by time, newest first.
    sa.Index("ix_gateway_usage_key_time", "key_id", "created_at"),
    sa.Index("ix_gateway_usage_model_time", "model", "created_at"),
    sa.Index("ix_gateway_usage_time", "created_at"),
)

# Columns a UsageRecord maps to one for one (everything but the surrogate id).
USAGE_FIELDS: tuple[str, ...] = tuple(c.name for c in usage.columns if c.name != "id")
KEY_FIELDS: tuple[str, ...] = tuple(c.name for c in api_keys.columns)

__all__ = ["KEY_FIELDS", "USAGE_FIELDS", "api_keys", "metadata", "usage"]
