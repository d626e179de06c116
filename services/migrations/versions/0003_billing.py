"""wallets, key spend, reservations, ledger, usage logs; key spend caps

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("spend_cap_nano", sa.BigInteger(), nullable=True))
    op.create_table(
        "wallets",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("balance_nano", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False, server_default="0"),
    )
    # Every existing account gets its (empty) wallet.
    op.execute("INSERT INTO wallets (account_id, balance_nano, reserved_nano) SELECT id, 0, 0 FROM accounts")
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reserved_nano", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "ledger",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_nano", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("charge_key", sa.String(80), nullable=True, unique=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_id", "id"])
    op.create_table(
        "usage_logs",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("upstream_model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(20), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("ttft_ms", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error_code", sa.String(40), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for name, columns in {
        "ix_usage_account_time": ["account_id", "created_at"],
        "ix_usage_account_key_time": ["account_id", "key_id", "created_at"],
        "ix_usage_account_model_time": ["account_id", "model", "created_at"],
        "ix_usage_account_status_time": ["account_id", "status", "created_at"],
        "ix_usage_request": ["request_id"],
    }.items():
        op.create_index(name, "usage_logs", columns)


def downgrade() -> None:
    op.drop_table("usage_logs")
    op.drop_index("ix_ledger_account_id", table_name="ledger")
    op.drop_table("ledger")
    op.drop_table("reservations")
    op.drop_table("key_spend")
    op.drop_table("wallets")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("spend_cap_nano")
