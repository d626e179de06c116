"""Console users, their sessions and invites in the database.

A session token is a credential like an API key: `principal_for_session` turns it into the same
Principal the interceptor checks every RPC against, with the scopes the user's role grants.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.passwords import DUMMY_HASH, hash_password, verify_password
from services.auth.secrets import new_id
from services.auth.verifier import Principal
from services.policy import ADMIN_SCOPE, DEFAULT_SCOPES
from services.storage.database import as_utc, utcnow
from services.storage.tables import Account, UserInviteRow, UserRow, UserSessionRow

OWNER, MEMBER = "owner", "member"
ROLES = (OWNER, MEMBER)
SESSION_PREFIX = "sess_"
INVITE_PREFIX = "inv_"
SESSION_LIFETIME = timedelta(hours=12)
INVITE_LIFETIME = timedelta(days=7)
# A person clicking through the console makes a handful of calls per page; keys keep their own limits.
SESSION_RATE_LIMIT_PER_MINUTE = 600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_EMAIL = re.compile(r"[^@\s]{1,64}@(?:[^@\s.]+\.)+[^@\s.]{1,63}")


class UserExists(ValueError):
    pass


class InviteUnusable(LookupError):
    pass


def normalize_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return len(email) <= 320 and _EMAIL.fullmatch(email) is not None


def scopes_of(role: str) -> frozenset[str]:
    return frozenset(DEFAULT_SCOPES) | ({ADMIN_SCOPE} if role == OWNER else frozenset())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _well_formed(token: str, prefix: str) -> bool:
    return token.startswith(prefix) and _TOKEN.fullmatch(token[len(prefix):]) is not None


def is_session_token(secret: str) -> bool:
    return secret.startswith(SESSION_PREFIX)


class UserStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create_user(self, account_id: str, email: str, password: str, role: str) -> UserRow:
        # scrypt is deliberately slow: off the event loop.
        password_hash = await asyncio.to_thread(hash_password, password)
        async with self._sessions() as session:
            if await session.get(Account, account_id) is None:
                raise LookupError(account_id)
            row = UserRow(
                id=new_id("usr"), account_id=account_id, email=normalize_email(email),
                password_hash=password_hash, role=role, created_at=utcnow(),
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                raise UserExists(email) from None
            return row

    async def authenticate(self, email: str, password: str) -> UserRow | None:
        async with self._sessions() as session:
            row = (await session.exec(select(UserRow).where(UserRow.email == normalize_email(email)))).first()
        stored = row.password_hash if row is not None else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, stored)
        return row if ok and row is not None else None

    async def start_session(self, user: UserRow) -> tuple[UserSessionRow, str]:
        token = _new_token(SESSION_PREFIX)
        now = utcnow()
        row = UserSessionRow(
            id=new_id("ses"), token_hash=_digest(token), user_id=user.id, created_at=now, expires_at=now + SESSION_LIFETIME,
        )
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
        return row, token

    async def _session_user(self, token: str) -> tuple[UserSessionRow, UserRow] | None:
        if not _well_formed(token, SESSION_PREFIX):
            return None
        async with self._sessions() as session:
            found = (await session.exec(
                select(UserSessionRow, UserRow)
                .join(UserRow, UserRow.id == UserSessionRow.user_id)
                .where(UserSessionRow.token_hash == _digest(token))
            )).first()
        if found is None:
            return None
        row, user = found
        if row.revoked_at is not None or as_utc(row.expires_at) <= utcnow():
            return None
        return row, user

    async def principal_for_session(self, token: str) -> Principal | None:
        found = await self._session_user(token)
        if found is None:
            return None
        row, user = found
        return Principal(
            key_id=user.id, account_id=user.account_id, scopes=scopes_of(user.role),
            rate_limit_per_minute=SESSION_RATE_LIMIT_PER_MINUTE, expires_at=as_utc(row.expires_at),
        )

    async def user(self, user_id: str) -> UserRow | None:
        async with self._sessions() as session:
            return await session.get(UserRow, user_id)

    async def end_session(self, token: str) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(UserSessionRow)
                .where(UserSessionRow.token_hash == _digest(token), UserSessionRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.commit()

    async def list_users(self, account_id: str) -> list[UserRow]:
        async with self._sessions() as session:
            query = select(UserRow).where(UserRow.account_id == account_id).order_by(UserRow.created_at, UserRow.id)
            return list((await session.exec(query)).all())

    async def delete_user(self, account_id: str, user_id: str) -> bool:
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
            if row is None or row.account_id != account_id:
                return False
            await session.exec(
                update(UserSessionRow).where(UserSessionRow.user_id == user_id, UserSessionRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await session.delete(row)
            await session.commit()
            return True

    async def create_invite(self, account_id: str, role: str, created_by: str) -> tuple[UserInviteRow, str]:
        token = _new_token(INVITE_PREFIX)
        now = utcnow()
        row = UserInviteRow(
            id=new_id("inv"), token_hash=_digest(token), account_id=account_id, role=role, created_by=created_by,
            created_at=now, expires_at=now + INVITE_LIFETIME,
        )
        async with self._sessions() as session:
            if await session.get(Account, account_id) is None:
                raise LookupError(account_id)
            session.add(row)
            await session.commit()
        return row, token

    async def accept_invite(self, token: str, email: str, password: str) -> UserRow:
        """Creates the invited user. The invite is claimed by one conditional update, so two people
        racing with one link cannot both get in; a claim whose user cannot be created is undone."""
        if not _well_formed(token, INVITE_PREFIX):
            raise InviteUnusable()
        now = utcnow()
        async with self._sessions() as session:
            invite = (await session.exec(select(UserInviteRow).where(UserInviteRow.token_hash == _digest(token)))).first()
            if invite is None or invite.used_at is not None or as_utc(invite.expires_at) <= now:
                raise InviteUnusable()
            claimed = await session.exec(
                update(UserInviteRow).where(UserInviteRow.id == invite.id, UserInviteRow.used_at.is_(None)).values(used_at=now)
            )
            if claimed.rowcount != 1:
                raise InviteUnusable()
            await session.commit()
        try:
            return await self.create_user(invite.account_id, email, password, invite.role)
        except BaseException:
            async with self._sessions() as session:
                await session.exec(update(UserInviteRow).where(UserInviteRow.id == invite.id).values(used_at=None))
                await session.commit()
            raise
