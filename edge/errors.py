"""gRPC status -> the error body and HTTP status of the public surface that was called (DESIGN.md §3).

The HTTP status of each reason comes from the contract (ErrorReason presentation options); this
module only knows how each surface's clients expect the body to look.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.errors import Reason, ReasonInfo, error_info_from, known_reason, reason_info

# The surfaces: each answers errors in the shape its clients parse. Which surface a binding answers
# in is declared next to its codec (edge/codecs.py) and resolved once at start-up (edge/routes.py).
DEFAULT = "default"        # Talkory's shape plus OpenAI's `type` and `param`
ANTHROPIC = "anthropic"
GEMINI = "gemini"
TEMPLATED = "templated"    # the templated API, /api/v1
SURFACES = frozenset({DEFAULT, ANTHROPIC, GEMINI, TEMPLATED})

# When a call fails without an ErrorInfo (the service is down, a deadline passed), its gRPC code decides.
_BY_GRPC_CODE = {
    grpc.StatusCode.UNAVAILABLE: Reason.ERROR_REASON_SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reason.ERROR_REASON_SERVICE_UNAVAILABLE,
    grpc.StatusCode.CANCELLED: Reason.ERROR_REASON_SERVICE_UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED: Reason.ERROR_REASON_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: Reason.ERROR_REASON_INVALID_REQUEST,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.ERROR_REASON_PAYLOAD_TOO_LARGE,
    grpc.StatusCode.UNAUTHENTICATED: Reason.ERROR_REASON_INVALID_API_KEY,
    grpc.StatusCode.PERMISSION_DENIED: Reason.ERROR_REASON_INSUFFICIENT_SCOPE,
    grpc.StatusCode.NOT_FOUND: Reason.ERROR_REASON_NOT_FOUND,
}

# OpenAI's error `type` by HTTP status: the openai SDK picks its exception class by status, and
# clients that switch on `type` see the value OpenAI itself would send.
_OPENAI_TYPE = {
    400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
    403: "permission_error", 404: "invalid_request_error", 405: "invalid_request_error",
    413: "invalid_request_error", 429: "rate_limit_error", 431: "invalid_request_error",
}
_ANTHROPIC_TYPE = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
    413: "request_too_large", 429: "rate_limit_error", 431: "request_too_large", 503: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 431: "INVALID_ARGUMENT",
    500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
}
# The templated API (/api/v1) documents its own codes.
_TEMPLATED_CODE = {
    "MISSING_API_KEY": "INVALID_API_KEY", "INVALID_API_KEY": "INVALID_API_KEY",
    "INSUFFICIENT_BALANCE": "INSUFFICIENT_BALANCE", "SPEND_CAP_REACHED": "INSUFFICIENT_BALANCE",
    "RATE_LIMITED": "RATE_LIMIT_EXCEEDED", "INVALID_TEMPLATE": "INVALID_TEMPLATE",
    "INVALID_REQUEST": "VALIDATION_ERROR", "UPSTREAM_ERROR": "GENERATION_FAILED",
    "BILLING_FAILED": "BILLING_FAILED", "MODEL_NOT_ALLOWED": "MODEL_NOT_FOUND",
}
# Where a surface documents another status than the contract's: the templated API's own table.
_TEMPLATED_STATUS = {"UPSTREAM_ERROR": 502, "MODEL_NOT_ALLOWED": 404}
# The default surface documents upstream failure as 503 service_unavailable.
_DEFAULT_CODE = {"UPSTREAM_ERROR": "service_unavailable"}


@dataclass(frozen=True, slots=True)
class PublicError:
    reason: ReasonInfo
    message: str
    param: str | None = None

    @property
    def http_status(self) -> int:
        return self.reason.http_status


def public_error(reason: int, message: str, param: str | None = None) -> PublicError:
    return PublicError(reason_info(reason), message, param)


def from_rpc_error(code: grpc.StatusCode, details: str | None, trailing_metadata) -> PublicError:
    info, message = error_info_from(trailing_metadata)
    reason = known_reason(info.reason) if info is not None else None
    if reason is None:
        fallback = _BY_GRPC_CODE.get(code, Reason.ERROR_REASON_INTERNAL_ERROR)
        reason = reason_info(fallback)
        # Without an ErrorInfo the details may be transport internals: never show those.
        message = {
            Reason.ERROR_REASON_SERVICE_UNAVAILABLE: "Service temporarily unavailable; retry shortly.",
            Reason.ERROR_REASON_INTERNAL_ERROR: "Internal error.",
        }.get(fallback, message or details or "Request failed.")
    param = info.metadata.get("field") if info is not None else None
    return PublicError(reason, message or details or "Request failed.", param)


def http_status(surface: str, error: PublicError) -> int:
    if surface == TEMPLATED:
        return _TEMPLATED_STATUS.get(error.reason.name, error.http_status)
    return error.http_status


def error_body(surface: str, error: PublicError, request_id: str) -> dict:
    status = http_status(surface, error)
    if surface == ANTHROPIC:
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPE.get(status, "api_error"), "message": error.message},
            "request_id": request_id,
        }
    if surface == GEMINI:
        # Google APIs carry the request id as a google.rpc.RequestInfo detail.
        return {
            "error": {
                "code": status,
                "message": error.message,
                "status": _GOOGLE_STATUS.get(status, "INTERNAL"),
                "details": [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}],
            }
        }
    if surface == TEMPLATED:
        code = _TEMPLATED_CODE.get(error.reason.name, error.reason.name)
        body = {"code": code, "message": error.message, "request_id": request_id}
        if error.param:
            body["field"] = error.param  # which input failed validation, e.g. "options.tone"
        return {"success": False, "error": body}
    return {
        "error": {
            "code": _DEFAULT_CODE.get(error.reason.name, error.reason.code),
            "message": error.message,
            "status": status,
            "requestId": request_id,
            "type": _OPENAI_TYPE.get(status, "api_error"),
            "param": error.param,
        }
    }
