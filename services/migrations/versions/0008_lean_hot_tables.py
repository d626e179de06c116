"""fewer b-trees on the priced path: reservations without a time index (and WITHOUT ROWID on
SQLite); the usage log without its unused request-id index

A reservation lives as long as one request: its row is inserted at admission and deleted at
settlement. As a rowid table with a text primary key and a time index, SQLite kept three b-trees
for it (the table, the key's index, `ix_reservations_created_at`), six page writes a request. As a
WITHOUT ROWID table keyed by its id it is one. The stale sweep's `created_at < cutoff` scans a
table holding only the requests in flight, so it needs no index. No query filters the usage log by
request id (listings and the console's rollup go by account and time), so `ix_usage_request` only
cost an insert into a random place of a growing index per request.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _rebuild_reservations(*, with_rowid: bool) -> None:
    # Batch mode copies the rows into a table of the new kind, so holds in flight survive.
    with op.batch_alter_table("reservations", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}):
        pass


def upgrade() -> None:
    op.drop_index("ix_usage_request", table_name="usage_logs")
    op.drop_index("ix_reservations_created_at", table_name="reservations")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_reservations(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_reservations(with_rowid=True)
    op.create_index("ix_reservations_created_at", "reservations", ["created_at"])
    op.create_index("ix_usage_request", "usage_logs", ["request_id"])
