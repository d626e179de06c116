"""What the interceptor learned about the current call, visible to the servicer handling it."""

from __future__ import annotations

import re
from random import getrandbits
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.auth.verifier import Principal
from services.policy import Policy

if TYPE_CHECKING:
    from services.telemetry.calls import CallRecord

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_request_id() -> str:
    # Unique, not secret (nothing is authorized by a request id): 96 bits from the process's Mersenne
    # Twister (seeded from the OS, reseeded in a forked child), without a getrandom call per request.
    return f"req_{getrandbits(96):024x}"


def sane_request_id(value: str | None) -> str | None:
    """A client-chosen request id is kept only if it cannot smuggle anything into logs or headers."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return None


@dataclass(frozen=True, slots=True)
class CallContext:
    principal: Principal
    request_id: str
    policy: Policy
    # The account the call acts on, as the interceptor resolved it from the policy's target.
    account_id: str = ""
    # The caller is an admin key of the operator's own account.
    operator: bool = False
    # What the call reports when it ends (metrics, span, access log); filled in as it goes.
    record: "CallRecord | None" = None
    # The response headers (request id, rate limit) the call sends.
    headers: tuple = ()


_current: ContextVar[CallContext] = ContextVar("switchyard_call")


def current() -> CallContext:
    """The authenticated caller of the RPC being served (set by the interceptor)."""
    return _current.get()


def current_or_none() -> CallContext | None:
    """The current call's context, or None outside an RPC (start-up probes, background work)."""
    return _current.get(None)


def bind(ctx: CallContext):
    return _current.set(ctx)
