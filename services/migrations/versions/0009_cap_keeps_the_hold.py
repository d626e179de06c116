"""a spend cap lowered while a request runs no longer makes its answer free: the settlement may
always charge up to the request's hold

The settlement bounded every charge by the cap as it stands then. A key's admin could lower the
cap (to what the key had spent) while requests admitted under the old one were in flight, or just
after, while replicas still admitted with the cached cap, and those answers were charged nothing.
Now the hold, taken under the cap in force at admission, is always chargeable; only what an
upstream reports beyond the hold is bounded by the cap read at settlement. With the cap unchanged
nothing differs: a hold admitted under the cap always has at least its own room left.

Only PostgreSQL has the function; SQLite runs the same rule from Python (sqlite_money._charge).

Revision ID: 0009
Revises: 0008
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_CUT_TO_THE_CAP = "v_charged := LEAST(v_charged, GREATEST(0, v_cap - COALESCE(v_spent, 0) - (COALESCE(v_reserved, 0) - v_own)));"
_UP_TO_THE_HOLD = ("v_charged := LEAST(v_charged, GREATEST(held.amount_nano, "
                   "v_cap - COALESCE(v_spent, 0) - (COALESCE(v_reserved, 0) - v_own)));")


def _settle_0006() -> str:
    # 0006's function with one line changed, rather than a second copy of its fifty lines.
    spec = importlib.util.spec_from_file_location("_money_functions_0006", Path(__file__).with_name("0006_money_functions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SETTLE.count(_CUT_TO_THE_CAP) == 1, "0006's settlement no longer has the line this migration changes"
    return module.SETTLE


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.get_bind().exec_driver_sql(_settle_0006().replace(_CUT_TO_THE_CAP, _UP_TO_THE_HOLD))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.get_bind().exec_driver_sql(_settle_0006())
