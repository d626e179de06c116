"""generation logs of the templated API; the template in usage logs

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_logs") as batch:
        batch.add_column(sa.Column("template", sa.String(100), nullable=False, server_default=""))
    op.create_table(
        "generation_logs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("gateway_request_id", sa.String(128), nullable=False),
        sa.Column("batch_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("template", sa.String(100), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nano", sa.BigInteger(), nullable=False),
        sa.Column("generation_time_ms", sa.Integer(), nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=False, server_default=""),
        sa.Column("webhook_status", sa.String(10), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for name, columns in {
        "ix_generation_account_time": ["account_id", "created_at"],
        "ix_generation_account_batch_time": ["account_id", "batch_id", "created_at"],
        "ix_generation_account_template_time": ["account_id", "template", "created_at"],
    }.items():
        op.create_index(name, "generation_logs", columns)


def downgrade() -> None:
    op.drop_table("generation_logs")
    with op.batch_alter_table("usage_logs") as batch:
        batch.drop_column("template")
