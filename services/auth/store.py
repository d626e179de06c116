"""Keys and accounts in the database."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson
from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import secrets as key_secrets
from services.policy import DEFAULT_SCOPES
from services.storage.database import as_utc, utcnow
from services.storage.tables import Account, ApiKeyRecord, GatewayMeta, WalletRow

DEFAULT_ACCOUNT_ID = "acct_default"
_BOOTSTRAP_MARK = "bootstrap_admin_key"


class KeyNotFound(LookupError):
    pass


class InvalidPageToken(ValueError):
    pass


class KeyState:
    """The lifecycle states of a key, derived from its timestamps (never stored)."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


def key_state(record: ApiKeyRecord, now: datetime) -> str:
    if record.revoked_at is not None:
        return KeyState.REVOKED
    expires = as_utc(record.expires_at)
    if expires is not None and expires <= now:
        return KeyState.EXPIRED
    return KeyState.ACTIVE


def normalize_scopes(requested: list[str] | tuple[str, ...]) -> list[str]:
    scopes = list(DEFAULT_SCOPES)
    for scope in requested:
        scope = scope.strip()
        if scope and scope not in scopes:
            scopes.append(scope)
    return scopes


def _encode_token(record: ApiKeyRecord) -> str:
    raw = orjson.dumps({"c": as_utc(record.created_at).isoformat(), "i": record.id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return datetime.fromisoformat(data["c"]), str(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidPageToken("page_token is not one this API returned") from exc


class KeyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    async def account_exists(self, account_id: str) -> bool:
        async with self._sessions() as session:
            return await session.get(Account, account_id) is not None

    async def ensure_account(self, account_id: str, name: str | None = None) -> None:
        async with self._sessions() as session:
            if await session.get(Account, account_id) is None:
                # Every account has exactly one wallet, born empty with it.
                session.add(Account(id=account_id, name=name or account_id, created_at=utcnow()))
                session.add(WalletRow(account_id=account_id, balance_nano=0, reserved_nano=0))
                try:
                    await session.commit()
                except IntegrityError:  # another process created it meanwhile
                    await session.rollback()

    async def create_key(
        self,
        *,
        account_id: str,
        name: str,
        scopes: list[str] | tuple[str, ...] = (),
        rate_limit_per_minute: int,
        expires_at: datetime | None = None,
        allowed_models: list[str] | tuple[str, ...] = (),
        spend_cap_nano: int | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        await self.ensure_account(account_id)
        async with self._sessions() as session:
            record, secret = self._new_record(account_id, name, scopes, rate_limit_per_minute, expires_at)
            record.allowed_models = " ".join(dict.fromkeys(m.strip() for m in allowed_models if m.strip()))
            record.spend_cap_nano = spend_cap_nano
            session.add(record)
            await session.commit()
            return record, secret

    @staticmethod
    def _new_record(account_id, name, scopes, rate_limit_per_minute, expires_at) -> tuple[ApiKeyRecord, str]:
        secret = key_secrets.new_secret()
        record = ApiKeyRecord(
            id=key_secrets.new_id("key"),
            account_id=account_id,
            name=name,
            key_hash=key_secrets.digest(secret),
            prefix=key_secrets.display_prefix(secret),
            last_four=secret[-4:],
            scopes=" ".join(normalize_scopes(scopes)),
            rate_limit_per_minute=rate_limit_per_minute,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        return record, secret

    async def bootstrap_admin_key(self, rate_limit_per_minute: int) -> str | None:
        """On an installation's first start, issue an admin key; exactly once, even with racing replicas.

        Returns the secret when this call issued it, else None.
        """
        await self.ensure_account(DEFAULT_ACCOUNT_ID, "Default account")
        async with self._sessions() as session:
            if await session.get(GatewayMeta, _BOOTSTRAP_MARK) is not None:
                return None
            record, secret = self._new_record(DEFAULT_ACCOUNT_ID, "admin", ["admin"], rate_limit_per_minute, None)
            # The mark's primary key is the lock: a racing replica's insert fails and it issues nothing.
            session.add(GatewayMeta(name=_BOOTSTRAP_MARK, value=record.id))
            session.add(record)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return None
            return secret

    async def find_by_digest(self, key_digest: str) -> ApiKeyRecord | None:
        async with self._sessions() as session:
            result = await session.exec(select(ApiKeyRecord).where(ApiKeyRecord.key_hash == key_digest))
            return result.first()

    async def account_of_key(self, key_id: str) -> str | None:
        async with self._sessions() as session:
            found = await session.exec(select(ApiKeyRecord.account_id).where(ApiKeyRecord.id == key_id))
            return found.first()

    async def get_key(self, account_id: str | None, key_id: str) -> ApiKeyRecord:
        """A key by id; `account_id` None means any account (CLI, run by the operator)."""
        async with self._sessions() as session:
            record = await session.get(ApiKeyRecord, key_id)
        if record is None or (account_id is not None and record.account_id != account_id):
            raise KeyNotFound(key_id)
        return record

    async def list_keys(
        self,
        account_id: str | None,
        *,
        state: str | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[ApiKeyRecord], str]:
        now = utcnow()
        query = select(ApiKeyRecord)
        if account_id is not None:
            query = query.where(ApiKeyRecord.account_id == account_id)
        if state == KeyState.REVOKED:
            query = query.where(ApiKeyRecord.revoked_at.is_not(None))
        elif state == KeyState.EXPIRED:
            query = query.where(ApiKeyRecord.revoked_at.is_(None), ApiKeyRecord.expires_at <= now)
        elif state == KeyState.ACTIVE:
            query = query.where(
                ApiKeyRecord.revoked_at.is_(None),
                or_(ApiKeyRecord.expires_at.is_(None), ApiKeyRecord.expires_at > now),
            )
        if page_token:
            created, key_id = _decode_token(page_token)
            query = query.where(
                or_(
                    ApiKeyRecord.created_at < created,
                    and_(ApiKeyRecord.created_at == created, ApiKeyRecord.id < key_id),
                )
            )
        query = query.order_by(ApiKeyRecord.created_at.desc(), ApiKeyRecord.id.desc()).limit(page_size + 1)
        async with self._sessions() as session:
            records = list((await session.exec(query)).all())
        next_token = _encode_token(records[page_size - 1]) if len(records) > page_size else ""
        return records[:page_size], next_token

    async def revoke_key(self, account_id: str | None, key_id: str) -> ApiKeyRecord:
        async with self._sessions() as session:
            record = await session.get(ApiKeyRecord, key_id)
            if record is None or (account_id is not None and record.account_id != account_id):
                raise KeyNotFound(key_id)
            if record.revoked_at is None:
                record.revoked_at = utcnow()
                session.add(record)
                await session.commit()
                await session.refresh(record)
            return record

    async def update_key(self, key_id: str, *, name=None, rate_limit_per_minute=None, allowed_models=None) -> ApiKeyRecord:
        """Change a key the caller was found to own (the interceptor resolved its account)."""
        async with self._sessions() as session:
            record = await session.get(ApiKeyRecord, key_id)
            if record is None:
                raise KeyNotFound(key_id)
            if name is not None:
                record.name = name
            if rate_limit_per_minute is not None:
                record.rate_limit_per_minute = rate_limit_per_minute
            if allowed_models is not None:
                record.allowed_models = " ".join(dict.fromkeys(m.strip() for m in allowed_models if m.strip()))
            session.add(record)
            await session.commit()
            await session.refresh(record)
            return record

    async def record_last_use(self, used: dict[str, datetime]) -> None:
        if not used:
            return
        async with self._sessions() as session:
            for key_id, when in used.items():
                await session.exec(update(ApiKeyRecord).where(ApiKeyRecord.id == key_id).values(last_used_at=when))
            await session.commit()
