"""Database tables (SQLModel). Times are stored as UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, Text
from sqlmodel import Field, SQLModel


def _utc_column(nullable: bool = True, index: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ApiKeyRecord(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_account_created", "account_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", max_length=40)
    name: str = Field(max_length=100)
    # SHA-256 of the secret; the secret itself is never stored.
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    last_four: str = Field(max_length=4)
    # Space-separated (scopes never contain spaces).
    scopes: str = Field(max_length=1000)
    rate_limit_per_minute: int
    # Space-separated public model names this key may use; empty means every model.
    allowed_models: str = Field(default="", max_length=4000)
    # Monthly (calendar month, UTC) spend cap in nano-USD; None: no cap.
    spend_cap_nano: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=_utc_column())
    expires_at: datetime | None = Field(default=None, sa_column=_utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column())


class GatewayMeta(SQLModel, table=True):
    """One-off facts about this installation, e.g. that the bootstrap admin key was issued."""

    __tablename__ = "gateway_meta"

    name: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=1000)


class RegistryModel(SQLModel, table=True):
    """An admin's change to the model registry, layered over the config file's models.

    A row replaces the config's model of the same id; a `deleted` row hides it.
    """

    __tablename__ = "registry_models"

    id: str = Field(primary_key=True, max_length=200)
    # The switchyard.routing.v1.Model message, serialized (deployments included).
    spec: bytes
    deleted: bool = False
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class WalletRow(SQLModel, table=True):
    """One wallet per account. balance == the sum of the account's ledger, kept in the same transactions."""

    __tablename__ = "wallets"

    account_id: str = Field(primary_key=True, foreign_key="accounts.id", max_length=40)
    balance_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    # Held for requests in flight.
    reserved_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))


class KeySpendRow(SQLModel, table=True):
    """A key's spend in one calendar month (UTC), for its spend cap."""

    __tablename__ = "key_spend"

    key_id: str = Field(primary_key=True, max_length=40)
    month: str = Field(primary_key=True, max_length=7)
    spent_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    reserved_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))


class ReservationRow(SQLModel, table=True):
    """Money held for one request in flight; settled (charged) or released when it ends.

    Found only by its id (the stale sweep scans the few rows in flight): one b-tree on SQLite
    (WITHOUT ROWID) and no time index, so admission and settlement write one page each for it."""

    __tablename__ = "reservations"
    __table_args__ = {"sqlite_with_rowid": False}

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    key_id: str = Field(max_length=40)
    month: str = Field(max_length=7)
    amount_nano: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Whether the amount was also counted against the key's spend cap.
    capped: bool = False
    request_id: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class LedgerRow(SQLModel, table=True):
    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_account_id", "account_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(_ROW_ID, primary_key=True, autoincrement=True))
    account_id: str = Field(max_length=40)
    kind: str = Field(max_length=16)
    amount_nano: int = Field(sa_column=Column(BigInteger, nullable=False))
    key_id: str = Field(default="", max_length=40)
    request_id: str = Field(default="", max_length=128)
    # "<reservation id>:<attempt>" for charges: unique, so nothing can be charged twice.
    charge_key: str | None = Field(default=None, max_length=80, unique=True)
    note: str = Field(default="", max_length=500)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class UsageRow(SQLModel, table=True):
    __tablename__ = "usage_logs"
    __table_args__ = (
        Index("ix_usage_account_time", "account_id", "created_at"),
        Index("ix_usage_account_key_time", "account_id", "key_id", "created_at"),
        Index("ix_usage_account_model_time", "account_id", "model", "created_at"),
        Index("ix_usage_account_status_time", "account_id", "status", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(_ROW_ID, primary_key=True, autoincrement=True))
    request_id: str = Field(max_length=128)
    key_id: str = Field(max_length=40)
    account_id: str = Field(max_length=40)
    model: str = Field(max_length=200)
    provider: str = Field(default="", max_length=100)
    upstream_model: str = Field(default="", max_length=200)
    endpoint: str = Field(max_length=20)
    input_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    output_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    cost_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    usage_estimated: bool = False
    latency_ms: int = 0
    ttft_ms: int = 0
    status: str = Field(max_length=10)
    error_code: str = Field(default="", max_length=40)
    streamed: bool = False
    # The generation template used (templated API), else "".
    template: str = Field(default="", max_length=100)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class GenerationLogRow(SQLModel, table=True):
    """One call of the templated generation API (/api/v1/generate), with its prompt and answer."""

    __tablename__ = "generation_logs"
    __table_args__ = (
        Index("ix_generation_account_time", "account_id", "created_at"),
        Index("ix_generation_account_batch_time", "account_id", "batch_id", "created_at"),
        Index("ix_generation_account_template_time", "account_id", "template", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    key_id: str = Field(max_length=40)
    # The gateway's own request id (X-Request-Id), which the usage log and ledger also carry.
    gateway_request_id: str = Field(max_length=128)
    # The client's batch identifier (`request_id` in the API); many generations may share one.
    batch_id: str = Field(default="", max_length=128)
    template: str = Field(default="", max_length=100)
    model: str = Field(max_length=200)
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    response: str = Field(sa_column=Column(Text, nullable=False))
    input_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    output_tokens: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    cost_nano: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    generation_time_ms: int = 0
    webhook_url: str = Field(default="", max_length=2048)
    # "", "pending", "success" or "failed".
    webhook_status: str = Field(default="", max_length=10)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class WebhookSecretRow(SQLModel, table=True):
    """An account's webhook signing secret. Stored as-is: signing needs it; never shown in errors or logs."""

    __tablename__ = "webhook_secrets"

    account_id: str = Field(primary_key=True, max_length=40)
    secret: str = Field(max_length=100)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))


class WebhookDeliveryRow(SQLModel, table=True):
    """One webhook POST of a generation's result, kept until it succeeded or finally failed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_generation", "generation_id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(max_length=40)
    generation_id: str = Field(max_length=40)
    url: str = Field(max_length=2048)
    # The exact bytes POSTed (and signed) on every attempt.
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # "pending", "success" or "failed".
    status: str = Field(max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_utc_column(nullable=False))
    # A replica sending this delivery holds it until lease_until; lease_owner tells its claim apart,
    # so a replica whose lease ran out cannot overwrite the outcome of the one that took over.
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column())
    lease_owner: str = Field(default="", max_length=40)
    # 0: no HTTP response (connection error, timeout, refused address).
    last_status_code: int = 0
    last_error: str = Field(default="", max_length=300)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))


class UserRow(SQLModel, table=True):
    """A person who signs in to the console; belongs to one account with a role ("owner" or "member")."""

    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=40)
    account_id: str = Field(foreign_key="accounts.id", max_length=40, index=True)
    # Stored lower-cased: one person, one address, however it is typed.
    email: str = Field(max_length=320, unique=True)
    # "scrypt$n$r$p$salt$hash" (services/auth/passwords.py); never the password.
    password_hash: str = Field(max_length=300)
    role: str = Field(max_length=10)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class UserSessionRow(SQLModel, table=True):
    """A signed-in session. Like API keys, only the SHA-256 of its token is stored."""

    __tablename__ = "user_sessions"

    id: str = Field(primary_key=True, max_length=40)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: str = Field(max_length=40, index=True)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column())


class UserInviteRow(SQLModel, table=True):
    """A one-time invite into an account; only the SHA-256 of its token is stored."""

    __tablename__ = "user_invites"

    id: str = Field(primary_key=True, max_length=40)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: str = Field(max_length=40)
    role: str = Field(max_length=10)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=_utc_column())


class UsageDailyRow(SQLModel, table=True):
    """The usage log summed per closed UTC day, model, key and status (services/billing/usage_summary.py)."""

    __tablename__ = "usage_daily"

    account_id: str = Field(primary_key=True, max_length=40)
    day: str = Field(primary_key=True, max_length=10)
    model: str = Field(primary_key=True, max_length=200)
    key_id: str = Field(primary_key=True, max_length=40)
    status: str = Field(primary_key=True, max_length=10)
    requests: int = Field(sa_column=Column(BigInteger, nullable=False))
    input_tokens: int = Field(sa_column=Column(BigInteger, nullable=False))
    output_tokens: int = Field(sa_column=Column(BigInteger, nullable=False))
    cost_nano: int = Field(sa_column=Column(BigInteger, nullable=False))


class UsageRollupState(SQLModel, table=True):
    """The last UTC day of an account whose usage is in usage_daily; later days are summed from the log."""

    __tablename__ = "usage_rollup_state"

    account_id: str = Field(primary_key=True, max_length=40)
    through_day: str = Field(max_length=10)


class AccountSettingsRow(SQLModel, table=True):
    """Per-account preferences of the console, e.g. when to warn about a low balance."""

    __tablename__ = "account_settings"

    account_id: str = Field(primary_key=True, max_length=40)
    low_balance_threshold_nano: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
