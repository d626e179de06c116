"""UserService: sign-in, sessions, users and invites of an account (the console's people)."""

from __future__ import annotations

from services import call_context
from services.auth.passwords import check_new_password
from services.auth.ratelimit import RateLimiter
from services.auth.users import MEMBER, OWNER, InviteUnusable, UserExists, UserStore, is_session_token, normalize_email, valid_email
from services.errors import Reason, ServiceError, invalid_request
from services.storage.database import timestamp_of
from services.storage.tables import UserRow
from switchyard.auth.v1 import users_pb2, users_pb2_grpc

# Sign-in attempts per email address per minute, across every replica sharing the limiter.
LOGIN_ATTEMPTS_PER_MINUTE = 10
_ROLE_TO_PROTO = {OWNER: users_pb2.USER_ROLE_OWNER, MEMBER: users_pb2.USER_ROLE_MEMBER}
_PROTO_TO_ROLE = {v: k for k, v in _ROLE_TO_PROTO.items()}


def user_to_proto(row: UserRow) -> users_pb2.User:
    return users_pb2.User(
        id=row.id, email=row.email, account_id=row.account_id, role=_ROLE_TO_PROTO[row.role],
        create_time=timestamp_of(row.created_at),
    )


def _role(value: int) -> str:
    """The requested role (default: member), or the request is refused."""
    if value == users_pb2.USER_ROLE_UNSPECIFIED:
        return MEMBER
    if value not in _PROTO_TO_ROLE:
        raise invalid_request("role must be owner or member.", "role")
    return _PROTO_TO_ROLE[value]


def _checked_credentials(email: str, password: str) -> None:
    if not valid_email(normalize_email(email)):
        raise invalid_request("email is not a valid address.", "email")
    if (why := check_new_password(password)) is not None:
        raise invalid_request(why, "password")


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(self, users: UserStore, limiter: RateLimiter) -> None:
        self._users = users
        self._limiter = limiter

    async def SignIn(self, request: users_pb2.SignInRequest, context) -> users_pb2.SignInResponse:
        email = normalize_email(request.email)
        if not email or not request.password:
            raise invalid_request("email and password are required.", "email" if not email else "password")
        if len(email) > 320:  # no stored address is longer; and it would name a rate-limit bucket
            raise ServiceError(Reason.ERROR_REASON_INVALID_API_KEY, "Wrong email or password.")
        try:
            decision = await self._limiter.hit(f"login:{email}", LOGIN_ATTEMPTS_PER_MINUTE)
        except Exception as exc:  # noqa: BLE001 - unlimited guessing is not the fallback
            raise ServiceError(Reason.ERROR_REASON_SERVICE_UNAVAILABLE, "Rate limiter unavailable; retry shortly.") from exc
        if not decision.allowed:
            raise ServiceError(
                Reason.ERROR_REASON_RATE_LIMITED,
                f"Too many sign-in attempts; retry in {decision.retry_after} s.",
                metadata={"retryAfter": str(decision.retry_after)},
            )
        user = await self._users.authenticate(email, request.password[:1024])
        if user is None:
            # One message for an unknown address and a wrong password: no account discovery.
            raise ServiceError(Reason.ERROR_REASON_INVALID_API_KEY, "Wrong email or password.")
        session, token = await self._users.start_session(user)
        return users_pb2.SignInResponse(user=user_to_proto(user), session_token=token, expire_time=timestamp_of(session.expires_at))

    async def SignOut(self, request, context) -> users_pb2.SignOutResponse:
        authorization = dict(context.invocation_metadata() or ()).get("authorization", "")
        token = authorization.partition(" ")[2].strip()
        if is_session_token(token):
            await self._users.end_session(token)
        return users_pb2.SignOutResponse()

    async def GetCaller(self, request, context) -> users_pb2.GetCallerResponse:
        ctx = call_context.current()
        principal = ctx.principal
        reply = users_pb2.GetCallerResponse(account_id=principal.account_id, scopes=sorted(principal.scopes), operator=ctx.operator)
        user = await self._users.user(principal.key_id) if principal.key_id.startswith("usr_") else None
        if user is not None:
            reply.user.CopyFrom(user_to_proto(user))
        else:
            reply.key_id = principal.key_id
        return reply

    async def ListUsers(self, request, context) -> users_pb2.ListUsersResponse:
        rows = await self._users.list_users(call_context.current().account_id)
        return users_pb2.ListUsersResponse(users=[user_to_proto(r) for r in rows])

    async def CreateUser(self, request, context) -> users_pb2.CreateUserResponse:
        _checked_credentials(request.email, request.password)
        role = _role(request.role)
        try:
            row = await self._users.create_user(call_context.current().account_id, request.email, request.password, role)
        except UserExists:
            raise invalid_request("A user with this email already exists.", "email") from None
        except LookupError:
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, "No such account.", metadata={"resource": "account"}) from None
        return users_pb2.CreateUserResponse(user=user_to_proto(row))

    async def DeleteUser(self, request, context) -> users_pb2.DeleteUserResponse:
        ctx = call_context.current()
        if request.user_id == ctx.principal.key_id:
            raise invalid_request("You cannot remove yourself.", "user_id")
        if not await self._users.delete_user(ctx.account_id, request.user_id):
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"No user with id {request.user_id!r}.", metadata={"resource": "user"})
        return users_pb2.DeleteUserResponse()

    async def CreateInvite(self, request, context) -> users_pb2.CreateInviteResponse:
        role = _role(request.role)
        ctx = call_context.current()
        try:
            row, token = await self._users.create_invite(ctx.account_id, role, ctx.principal.key_id)
        except LookupError:
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, "No such account.", metadata={"resource": "account"}) from None
        invite = users_pb2.Invite(id=row.id, account_id=row.account_id, role=_ROLE_TO_PROTO[row.role], expire_time=timestamp_of(row.expires_at))
        return users_pb2.CreateInviteResponse(invite=invite, token=token)

    async def AcceptInvite(self, request, context) -> users_pb2.AcceptInviteResponse:
        _checked_credentials(request.email, request.password)
        try:
            row = await self._users.accept_invite(request.token, request.email, request.password)
        except InviteUnusable:
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, "This invite is unknown, used or expired.", metadata={"resource": "invite"}) from None
        except UserExists:
            raise invalid_request("A user with this email already exists.", "email") from None
        return users_pb2.AcceptInviteResponse(user=user_to_proto(row))
