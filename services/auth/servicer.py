"""AuthService: admin management of API keys, within the account the interceptor resolved for the call."""

from __future__ import annotations

from datetime import datetime


from services import call_context
from services.auth.store import InvalidPageToken, KeyNotFound, KeyState, KeyStore, key_state
from services.auth.verifier import KeyVerifier
from services.billing.ledger import usd
from services.errors import Reason, ServiceError, invalid_request
from services.storage.database import timestamp_of, utcnow
from services.storage.tables import ApiKeyRecord
from switchyard.auth.v1 import auth_pb2, auth_pb2_grpc

_STATE_TO_PROTO = {
    KeyState.ACTIVE: auth_pb2.KEY_STATE_ACTIVE,
    KeyState.REVOKED: auth_pb2.KEY_STATE_REVOKED,
    KeyState.EXPIRED: auth_pb2.KEY_STATE_EXPIRED,
}
_PROTO_TO_STATE = {v: k for k, v in _STATE_TO_PROTO.items()}
_MAX_RATE_LIMIT = 1_000_000


def key_to_proto(record: ApiKeyRecord, now: datetime | None = None) -> auth_pb2.ApiKey:
    key = auth_pb2.ApiKey(
        id=record.id,
        name=record.name,
        account_id=record.account_id,
        scopes=record.scopes.split(),
        prefix=record.prefix,
        last_four=record.last_four,
        state=_STATE_TO_PROTO[key_state(record, now or utcnow())],
        rate_limit_per_minute=record.rate_limit_per_minute,
        create_time=timestamp_of(record.created_at),
        last_use_time=timestamp_of(record.last_used_at),
        expire_time=timestamp_of(record.expires_at),
        revoke_time=timestamp_of(record.revoked_at),
        allowed_models=record.allowed_models.split(),
    )
    if record.spend_cap_nano is not None:
        key.spend_cap_nano_usd, key.spend_cap_usd = record.spend_cap_nano, usd(record.spend_cap_nano)
    return key


def validate_new_key(name: str, scopes, rate_limit: int, expires_at: datetime | None, allowed_models=()) -> None:
    """The rules for a new key, shared by the RPC and the CLI."""
    if not name.strip() or len(name) > 100:
        raise invalid_request("name is required and must be at most 100 characters.", "name")
    for scope in scopes:
        if not scope or len(scope) > 64 or any(c.isspace() for c in scope):
            raise invalid_request(f"invalid scope {scope!r}: 1–64 characters without spaces.", "scopes")
    if rate_limit < 0 or rate_limit > _MAX_RATE_LIMIT:
        raise invalid_request(f"rate_limit_per_minute must be between 1 and {_MAX_RATE_LIMIT}.", "rate_limit_per_minute")
    for model in allowed_models:
        if not model or len(model) > 200 or any(c.isspace() for c in model):
            raise invalid_request(f"invalid model name {model!r} in allowed_models.", "allowed_models")
    if expires_at is not None and expires_at <= utcnow():
        raise invalid_request("expire_time must be in the future.", "expire_time")


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, store: KeyStore, verifier: KeyVerifier) -> None:
        self._store = store
        self._verifier = verifier

    async def CreateKey(self, request: auth_pb2.CreateKeyRequest, context) -> auth_pb2.CreateKeyResponse:
        account_id = call_context.current().account_id
        expires_at = request.expire_time.ToDatetime(tzinfo=utcnow().tzinfo) if request.HasField("expire_time") else None
        validate_new_key(request.name, request.scopes, request.rate_limit_per_minute, expires_at, request.allowed_models)
        if not await self._store.account_exists(account_id):
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"No account {account_id!r}.", metadata={"resource": "account"})
        record, secret = await self._store.create_key(
            account_id=account_id,
            name=request.name.strip(),
            scopes=list(request.scopes),
            # 0 stays 0: "the default of whichever surface it calls", decided per request by the
            # interceptor, so a later change of the configured defaults reaches existing keys too.
            rate_limit_per_minute=request.rate_limit_per_minute,
            expires_at=expires_at,
            allowed_models=list(request.allowed_models),
        )
        return auth_pb2.CreateKeyResponse(api_key=key_to_proto(record), key=secret)

    async def ListKeys(self, request: auth_pb2.ListKeysRequest, context) -> auth_pb2.ListKeysResponse:
        account_id = call_context.current().account_id
        if request.page_size < 0 or request.page_size > 100:
            raise invalid_request("page_size must be between 1 and 100.", "page_size")
        try:
            records, next_token = await self._store.list_keys(
                account_id,
                state=_PROTO_TO_STATE.get(request.state),
                page_size=request.page_size or 50,
                page_token=request.page_token,
            )
        except InvalidPageToken as exc:
            raise invalid_request(str(exc), "page_token") from exc
        now = utcnow()
        return auth_pb2.ListKeysResponse(keys=[key_to_proto(r, now) for r in records], next_page_token=next_token)

    async def GetKey(self, request: auth_pb2.GetKeyRequest, context) -> auth_pb2.GetKeyResponse:
        try:
            record = await self._store.get_key(call_context.current().account_id, request.key_id)
        except KeyNotFound:
            raise _not_found(request.key_id) from None
        return auth_pb2.GetKeyResponse(api_key=key_to_proto(record))

    async def RevokeKey(self, request: auth_pb2.RevokeKeyRequest, context) -> auth_pb2.RevokeKeyResponse:
        try:
            record = await self._store.revoke_key(call_context.current().account_id, request.key_id)
        except KeyNotFound:
            raise _not_found(request.key_id) from None
        self._verifier.forget(record.id)
        return auth_pb2.RevokeKeyResponse(api_key=key_to_proto(record))

    async def UpdateKey(self, request: auth_pb2.UpdateKeyRequest, context) -> auth_pb2.UpdateKeyResponse:
        name = request.name if request.HasField("name") else None
        rate = request.rate_limit_per_minute if request.HasField("rate_limit_per_minute") else None
        if request.clear_allowed_models and request.allowed_models:
            raise invalid_request("Send allowed_models or clear_allowed_models, not both.", "allowed_models")
        models = [] if request.clear_allowed_models else (list(request.allowed_models) or None)
        if rate is not None and rate < 1:
            raise invalid_request("rate_limit_per_minute must be at least 1.", "rate_limit_per_minute")
        validate_new_key(name if name is not None else "unchanged", (), rate or 0, None, models or ())
        try:
            record = await self._store.update_key(
                request.key_id, name=name.strip() if name is not None else None, rate_limit_per_minute=rate, allowed_models=models,
            )
        except KeyNotFound:
            raise _not_found(request.key_id) from None
        self._verifier.forget(record.id)  # this process applies the new limits at once; others within a second
        return auth_pb2.UpdateKeyResponse(api_key=key_to_proto(record))


def _not_found(key_id: str) -> ServiceError:
    # Keys of other accounts are reported exactly like keys that do not exist.
    return ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"No API key with id {key_id!r}.", metadata={"resource": "api_key"})
