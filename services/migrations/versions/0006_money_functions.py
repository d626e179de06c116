"""PostgreSQL functions for the money hot path: reserve, settle and release in one call each

Each function runs in the caller's (autocommit) transaction, so a phase is one round trip and is
all-or-nothing. Lock order everywhere (reservation, wallet, key spend) is the one top-ups and the
ORM paths use, so concurrent calls on any number of replicas cannot deadlock. SQLite runs the same
statements from Python (services/billing/sqlite_money.py); nothing to create there.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RESERVE = """
CREATE OR REPLACE FUNCTION switchyard_reserve(
    p_id text, p_account text, p_key text, p_month text, p_amount bigint, p_cap bigint, p_request text, p_now timestamptz
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    -- A hold need not wait for the WAL flush: it is visible to every other transaction (and so
    -- guards admission on every replica) as soon as it commits, and one lost in a database crash
    -- is made good by switchyard_settle charging without it. Settlements stay synchronous.
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE wallets SET reserved_nano = reserved_nano + p_amount
     WHERE account_id = p_account AND balance_nano - reserved_nano >= p_amount;
    IF NOT FOUND THEN
        RETURN 'balance';
    END IF;
    IF p_cap IS NOT NULL THEN
        INSERT INTO key_spend AS s (key_id, month, spent_nano, reserved_nano)
             SELECT p_key, p_month, 0, p_amount WHERE p_amount <= p_cap
        ON CONFLICT (key_id, month) DO UPDATE SET reserved_nano = s.reserved_nano + EXCLUDED.reserved_nano
             WHERE s.spent_nano + s.reserved_nano + EXCLUDED.reserved_nano <= p_cap;
        IF NOT FOUND THEN
            -- Undo the wallet's hold in this same transaction (its row is still locked): all or nothing.
            UPDATE wallets SET reserved_nano = reserved_nano - p_amount WHERE account_id = p_account;
            RETURN 'spend_cap';
        END IF;
    END IF;
    INSERT INTO reservations (id, account_id, key_id, month, amount_nano, capped, request_id, created_at)
         VALUES (p_id, p_account, p_key, p_month, p_amount, p_cap IS NOT NULL, p_request, p_now);
    RETURN NULL;
END $$;
"""

# Returns the amount charged, or NULL when it was charged already under this charge key. A
# reservation that is gone without a charge (its hold lost in a database crash, or released by the
# stale sweep while the request still ran) is charged without a hold: at most what the wallet has
# free and the key's cap allows, so a delivered answer is never free.
SETTLE = """
CREATE OR REPLACE FUNCTION switchyard_settle(
    p_id text, p_cost bigint, p_charge_key text, p_note text, p_now timestamptz,
    p_account text, p_key text, p_month text, p_request text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    held reservations;  -- the table's row type
    v_free bigint;
    v_charged bigint;
    v_cap bigint;
    v_spent bigint;
    v_reserved bigint;
    v_own bigint;
BEGIN
    DELETE FROM reservations WHERE id = p_id RETURNING * INTO held;
    IF NOT FOUND THEN
        IF p_account IS NULL OR EXISTS (SELECT 1 FROM ledger WHERE charge_key = p_charge_key)
           OR NOT EXISTS (SELECT 1 FROM wallets WHERE account_id = p_account) THEN
            RETURN NULL;  -- charged already (nothing happens twice), or nobody to charge
        END IF;
        held.id := p_id;
        held.account_id := p_account;
        held.key_id := p_key;
        held.month := p_month;
        held.amount_nano := 0;
        held.capped := false;
        held.request_id := p_request;
    END IF;
    SELECT balance_nano - reserved_nano INTO v_free FROM wallets WHERE account_id = held.account_id FOR UPDATE;
    -- Never drive a balance negative: beyond its reservation a request may only take what is free.
    v_charged := LEAST(p_cost, held.amount_nano + GREATEST(0, v_free));
    v_own := CASE WHEN held.capped THEN held.amount_nano ELSE 0 END;
    SELECT spend_cap_nano INTO v_cap FROM api_keys WHERE id = held.key_id;
    IF v_cap IS NOT NULL THEN
        -- Never past the key's cap either (an upstream may report more than was held); the key's
        -- other holds keep their room.
        SELECT spent_nano, reserved_nano INTO v_spent, v_reserved FROM key_spend
         WHERE key_id = held.key_id AND month = held.month FOR UPDATE;
        v_charged := LEAST(v_charged, GREATEST(0, v_cap - COALESCE(v_spent, 0) - (COALESCE(v_reserved, 0) - v_own)));
    END IF;
    UPDATE wallets SET balance_nano = balance_nano - v_charged, reserved_nano = reserved_nano - held.amount_nano
     WHERE account_id = held.account_id;
    INSERT INTO key_spend AS s (key_id, month, spent_nano, reserved_nano) VALUES (held.key_id, held.month, v_charged, 0)
    ON CONFLICT (key_id, month) DO UPDATE SET spent_nano = s.spent_nano + v_charged, reserved_nano = s.reserved_nano - v_own;
    IF v_charged > 0 THEN
        INSERT INTO ledger (account_id, kind, amount_nano, key_id, request_id, charge_key, note, created_at)
             VALUES (held.account_id, 'charge', -v_charged, held.key_id, held.request_id, p_charge_key, p_note, p_now)
        ON CONFLICT (charge_key) DO NOTHING;
        IF NOT FOUND THEN
            -- Charged already under this key: undo all of the above, nothing happens twice.
            RAISE EXCEPTION USING ERRCODE = 'SY001', MESSAGE = 'charge exists: ' || p_charge_key;
        END IF;
    END IF;
    RETURN v_charged;
END $$;
"""

RELEASE = """
CREATE OR REPLACE FUNCTION switchyard_release(p_id text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    held reservations;  -- the table's row type
BEGIN
    -- A release lost in a database crash leaves a hold for the stale sweep: the safe side, so it
    -- need not wait for the WAL flush either.
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM reservations WHERE id = p_id RETURNING * INTO held;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE wallets SET reserved_nano = reserved_nano - held.amount_nano WHERE account_id = held.account_id;
    INSERT INTO key_spend AS s (key_id, month, spent_nano, reserved_nano) VALUES (held.key_id, held.month, 0, 0)
    ON CONFLICT (key_id, month) DO UPDATE
        SET reserved_nano = s.reserved_nano - CASE WHEN held.capped THEN held.amount_nano ELSE 0 END;
    RETURN true;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (RESERVE, SETTLE, RELEASE):
        # As the driver sees it: no bind-parameter parsing of ":=" in PL/pgSQL (and no "%" in it either).
        op.get_bind().exec_driver_sql(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS switchyard_reserve(text, text, text, text, bigint, bigint, text, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_settle(text, bigint, text, text, timestamptz, text, text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS switchyard_release(text)")
