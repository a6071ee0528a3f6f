"""Keys and the usage ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gateway_api_keys",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("key_hash", sa.String, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_gateway_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_gateway_api_keys_key_hash"),
    )
    op.create_table(
        "gateway_usage",
        sa.Column("id", _BIG_ID, nullable=False, autoincrement=True),
        sa.Column("request_id", sa.String, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_gateway_usage"),
        # Exactly once: a record written twice (a retried batch, a replayed journal) is
        # skipped by ON CONFLICT DO NOTHING against this.
        sa.UniqueConstraint("request_id", name="uq_gateway_usage_request_id"),
    )
    op.create_index("ix_gateway_usage_key_time", "gateway_usage", ["key_id", "created_at"])
    op.create_index("ix_gateway_usage_model_time", "gateway_usage", ["model", "created_at"])
    op.create_index("ix_gateway_usage_time", "gateway_usage", ["created_at"])


def downgrade() -> None:
    op.drop_table("gateway_usage")
    op.drop_table("gateway_api_keys")
