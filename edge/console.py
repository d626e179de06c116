"""The console at /console: its static files, and the cookie that carries a signed-in session.

The edge only moves a credential: the session token lives in an HttpOnly cookie the page's script
cannot read, and is handed to the services as `Authorization: Bearer sess_…`, where the policy
interceptor checks it like any key. A write that carries the cookie must also carry the CSRF token
(derived from the session, readable by the page from its own cookie) in `X-CSRF-Token`: another
site can make the browser send the cookie, never read it to forge the header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import grpc
import orjson
from starlette.requests import Request
from starlette.responses import Response

from edge.errors import PublicError, error_body, from_rpc_error, public_error
from services.call_context import new_request_id
from services.errors import Reason
from switchyard.auth.v1 import users_pb2

PREFIX = "/console"
SESSION_COOKIE = "sy_session"
CSRF_COOKIE = "sy_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# An email and a password; anything larger is not a sign-in.
_MAX_SIGN_IN_BYTES = 16 * 1024
STATIC = Path(__file__).resolve().parent / "console_static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}
# Everything the page loads comes from here: no CDN, no inline script, no framing.
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"switchyard-csrf:" + session_token.encode()).hexdigest()[:32]


def cookie_credential(request: Request) -> tuple[str | None, PublicError | None]:
    """`Bearer sess_…` from the session cookie, or a refusal when a write lacks its CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            return None, public_error(
                Reason.ERROR_REASON_INSUFFICIENT_SCOPE, "Missing or wrong X-CSRF-Token header for a cookie-authenticated write.",
            )
    return f"Bearer {token}", None


def _json(payload, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers or {})


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


class Console:
    def __init__(self, edge) -> None:
        self._edge = edge
        self._files = {p.name: (p.read_bytes(), _TYPES.get(p.suffix, "application/octet-stream"))
                       for p in STATIC.iterdir() if p.is_file()}

    def _rpc(self, name: str, request_class, response_class):
        return self._edge.channel.unary_unary(
            f"/switchyard.auth.v1.UserService/{name}",
            request_serializer=request_class.SerializeToString, response_deserializer=response_class.FromString,
        )

    def _error(self, error: PublicError, request_id: str) -> Response:
        return _json(error_body("default", error, request_id), error.http_status, {"x-request-id": request_id})

    async def static(self, request: Request) -> Response:
        name = request.url.path[len(PREFIX):].strip("/") or "index.html"
        found = self._files.get(name)
        if found is None:
            found = self._files["index.html"]  # the page routes itself (#/keys); unknown names get the shell
        body, media_type = found
        return Response(body, media_type=media_type, headers=_SECURITY_HEADERS)

    async def sign_in(self, request: Request) -> Response:
        request_id = new_request_id()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_SIGN_IN_BYTES:
                return self._error(public_error(Reason.ERROR_REASON_PAYLOAD_TOO_LARGE, "The sign-in body is too large."), request_id)
        try:
            data = orjson.loads(body)
            email, password = str(data.get("email", "")), str(data.get("password", ""))
        except (ValueError, AttributeError):
            return self._error(public_error(Reason.ERROR_REASON_INVALID_REQUEST, "Send {\"email\", \"password\"} as JSON."), request_id)
        call = self._rpc("SignIn", users_pb2.SignInRequest, users_pb2.SignInResponse)
        try:
            reply = await call(users_pb2.SignInRequest(email=email, password=password), metadata=[("x-request-id", request_id)], timeout=30)
        except grpc.aio.AioRpcError as exc:
            return self._error(from_rpc_error(exc.code(), exc.details(), exc.trailing_metadata()), request_id)
        response = _json({"user": {"id": reply.user.id, "email": reply.user.email, "accountId": reply.user.account_id}}, 200,
                         {"x-request-id": request_id})
        max_age = max(0, reply.expire_time.seconds - int(time.time()))
        secure = _secure(request)
        response.set_cookie(SESSION_COOKIE, reply.session_token, max_age=max_age, path="/", secure=secure, httponly=True, samesite="strict")
        # Readable by the page's script, which echoes it in X-CSRF-Token.
        response.set_cookie(CSRF_COOKIE, csrf_token(reply.session_token), max_age=max_age, path="/", secure=secure, httponly=False,
                            samesite="strict")
        return response

    async def sign_out(self, request: Request) -> Response:
        request_id = new_request_id()
        authorization, refusal = cookie_credential(request)
        if refusal is not None:
            return self._error(refusal, request_id)
        if authorization is not None:
            call = self._rpc("SignOut", users_pb2.SignOutRequest, users_pb2.SignOutResponse)
            try:
                await call(users_pb2.SignOutRequest(), metadata=[("authorization", authorization), ("x-request-id", request_id)], timeout=30)
            except grpc.aio.AioRpcError:
                pass  # an ended or unknown session: the cookies go all the same
        response = _json({}, 200, {"x-request-id": request_id})
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.delete_cookie(name, path="/", secure=_secure(request), httponly=name == SESSION_COOKIE, samesite="strict")
        return response

    @staticmethod
    def owns(path: str) -> bool:
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def handle(self, request: Request) -> Response:
        """Every request under /console: the session endpoint, else the page's files."""
        path, method = request.url.path, request.method
        if path == PREFIX + "/session":
            if method == "POST":
                return await self.sign_in(request)
            if method == "DELETE":
                return await self.sign_out(request)
            return self._not_allowed(method, path, "POST, DELETE")
        if method not in ("GET", "HEAD"):
            return self._not_allowed(method, path, "GET, HEAD")
        return await self.static(request)

    def _not_allowed(self, method: str, path: str, allowed: str) -> Response:
        error = public_error(Reason.ERROR_REASON_METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}; use {allowed}.")
        response = self._error(error, new_request_id())
        response.headers["allow"] = allowed
        return response
