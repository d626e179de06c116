"""The one internal error model: a gRPC status carrying exactly one google.rpc.ErrorInfo (AIP-193).

Services raise `ServiceError`; the interceptor turns it into the status. How each reason looks
outside gRPC (HTTP status, gRPC code) is declared in the contract itself, on the ErrorReason enum
values, and read from there, so the proto stays the single source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchyard.type.v1 import error_reason_pb2

DOMAIN = "switchyard.gateway"
_PREFIX = "ERROR_REASON_"
Reason = error_reason_pb2.ErrorReason


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    number: int
    name: str            # "RATE_LIMITED", as ErrorInfo.reason carries it
    code: str            # "rate_limited", as REST bodies show it
    http_status: int
    grpc_code: grpc.StatusCode


@lru_cache(maxsize=None)
def _catalog() -> tuple[dict[int, ReasonInfo], dict[str, ReasonInfo]]:
    by_number: dict[int, ReasonInfo] = {}
    codes = {c.value[0]: c for c in grpc.StatusCode}
    for value in error_reason_pb2.ErrorReason.DESCRIPTOR.values:
        if value.number == 0:
            continue
        presentation = value.GetOptions().Extensions[error_reason_pb2.presentation]
        name = value.name.removeprefix(_PREFIX)
        by_number[value.number] = ReasonInfo(
            number=value.number,
            name=name,
            code=name.lower(),
            http_status=presentation.http_status,
            grpc_code=codes[presentation.grpc_code],
        )
    return by_number, {info.name: info for info in by_number.values()}


def reason_info(reason: int | str) -> ReasonInfo:
    """Look a reason up by enum number or by its ErrorInfo name ("RATE_LIMITED")."""
    by_number, by_name = _catalog()
    return by_number[reason] if isinstance(reason, int) else by_name[reason]


def known_reason(name: str) -> ReasonInfo | None:
    return _catalog()[1].get(name)


class ServiceError(Exception):
    """A failure to report to the caller, with a reason from the contract's ErrorReason enum.

    `metadata` goes into ErrorInfo.metadata (camelCase keys, string values, per AIP-193);
    `trailers` are extra gRPC trailing metadata (e.g. retry-after), which the edge turns into headers.
    """

    def __init__(
        self,
        reason: int,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        trailers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.info = reason_info(reason)
        self.message = message
        self.metadata = dict(metadata or {})
        self.trailers = list(trailers or [])

    def to_grpc_status(self, request_id: str | None = None) -> grpc.Status:
        info = error_details_pb2.ErrorInfo(reason=self.info.name, domain=DOMAIN, metadata=self.metadata)
        if request_id:
            info.metadata["requestId"] = request_id
        detail = any_pb2.Any()
        detail.Pack(info)
        details = [detail]
        trailers = tuple(self.trailers)
        if (retry_after := self.metadata.get("retryAfter", "")).isdigit():
            # A retry makes sense (AIP-193): google.rpc.RetryInfo for gRPC clients, and the
            # retry-after trailer, which the edge turns into the Retry-After header of every surface.
            retry = any_pb2.Any()
            retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after))))
            details.append(retry)
            if not any(name == "retry-after" for name, _ in trailers):
                trailers += (("retry-after", retry_after),)
        status = rpc_status.to_status(
            status_pb2.Status(code=self.info.grpc_code.value[0], message=self.message, details=details)
        )
        return _Status(status.code, status.details, tuple(status.trailing_metadata) + trailers)


@dataclass(frozen=True, slots=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


def error_info_from(trailing_metadata) -> tuple[error_details_pb2.ErrorInfo | None, str | None]:
    """The ErrorInfo and status message carried in a failed call's `grpc-status-details-bin` trailer."""
    for key, value in trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info, status.message
        return None, status.message
    return None, None


def invalid_request(message: str, field: str | None = None) -> ServiceError:
    """The 400 of failed validation; `field` names the input at fault (the REST error's param)."""
    return ServiceError(Reason.ERROR_REASON_INVALID_REQUEST, message, metadata={"field": field} if field else None)
