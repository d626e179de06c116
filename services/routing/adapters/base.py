"""What every provider adapter implements: canonical request -> the provider's native API -> canonical answer.

N dialects + M providers, not N x M translations: dialect codecs (edge/dialects) turn vendor JSON into
the canonical messages of switchyard.routing.v1; adapters here turn those into each provider's wire
format and back. The router (retries, fallback, cool-down) sits above the adapters and only sees
`UpstreamError`s.

What more than one adapter needs lives here (Retry-After, sampling fields, extra_json, local token
counts, probe headers, reading an upstream's usage, scrubbing secrets out of upstream text); the
Server-Sent Events reader is sse.py, the registry of kinds kinds.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict

from services.config import ProviderConfig
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

# The largest context window a model can be configured with (services/config.py): no one call uses
# more tokens, so an upstream's larger count is not usage.
MAX_TOKENS = 2**31 - 1
# Upstream text copied into a message is for people, not a dump.
MAX_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    # Until the response headers arrive and, for streams, until the first chunk after them.
    first_byte: float = 60.0
    # The whole call, streams included.
    total: float = 600.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.first_byte)


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment being called: the provider and the model's name there (Azure: deployment name)."""

    provider: ProviderConfig
    upstream_model: str


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """The health probe's call: GET url?params with headers, one that costs no tokens (a model list)."""

    url: str
    headers: CIMultiDict[str]
    params: dict[str, str] | None = None


def probe_headers(provider: ProviderConfig, credentials: dict[str, str]) -> CIMultiDict[str]:
    """The provider's configured headers, then ours: case-insensitive, so a configured
    "authorization" cannot end up sent twice next to ours, and ours win."""
    headers: CIMultiDict[str] = CIMultiDict(provider.headers)
    headers.update(credentials)
    return headers


class UpstreamError(Exception):
    """A failed upstream call, classified for the router.

    retryable: worth another attempt (connection error, timeout, 429, 5xx), on this or another deployment.
    client_error: the request itself is wrong (upstream 400/404/413/422): passed to the client as
        invalid_request with the upstream's message; never retried, never failed over.
    status: the upstream HTTP status, if there was one.
    retry_after: seconds the upstream asked us to wait (Retry-After), if it did.
    message: safe to show a client: never contains a key; for client errors, the upstream's own message.
    started: True once any part of the answer was passed on (a stream's first chunk): too late to retry.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        client_error: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        started: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.client_error = client_error
        self.status = status
        self.retry_after = retry_after
        self.started = started


class ProviderAdapter(Protocol):
    async def chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> chat_pb2.ChatCompletion:
        """The whole answer. Fill id, created, choices, usage, system_fingerprint; the router sets
        model/provider/upstream_model."""

    def stream_chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        """Chunks in OpenAI's terms as they arrive: the first carries delta.role "assistant", then
        content / tool-call deltas, then a chunk with finish_reason, and last a chunk with no choices
        and the usage. Always ask the upstream for usage (the gateway bills from it). Use `async with`
        around the HTTP response so that cancelling the iteration closes the upstream request."""

    async def embed(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateEmbeddingsRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateEmbeddingsResponse: ...

    async def rerank(
        self, session: UpstreamSession, target: Target, request: routing_pb2.RerankRequest, timeouts: Timeouts
    ) -> routing_pb2.RerankResponse: ...

    @staticmethod
    def probe_request(provider: ProviderConfig, key: str) -> ProbeRequest:
        """The health monitor's cheap authenticated call (not asked of kinds registered upstream=False)."""


def unsupported(kind: str, operation: str) -> UpstreamError:
    return UpstreamError(f"Provider kind '{kind}' does not support {operation}.", retryable=False, client_error=True)


def estimate_tokens(text: str) -> int:
    """The documented estimate where a count is needed but no upstream reported one: ~4 characters a token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def tokens(*counts: Any) -> int | None:
    """The sum of token counts an upstream reported (one field, or the fields that make up one count,
    like Anthropic's cached and uncached input); a count left out (None) is 0. None when any of them
    is not a count a call can have: negative (billed, it would credit the wallet), a fraction, not a
    number, or more than MAX_TOKENS in all (10**30 does not even fit the books' integers)."""
    total = 0
    for count in counts:
        if count.__class__ is not int:  # not isinstance: True is an int, and no count
            if count is None:
                continue
            if count.__class__ is not float or not count.is_integer():
                return None
            count = int(count)
        if count < 0:
            return None
        total += count
    return total if total <= MAX_TOKENS else None


def exact_count(value: Any) -> int | None:
    """A count an answer exists to give (count_tokens): None when it is missing or no count at all."""
    return None if value is None else tokens(value)


def set_usage(usage: usage_pb2.TokenUsage, input_tokens: int | None, output_tokens: int | None, total_tokens: Any = None) -> bool:
    """`usage` from counts read with tokens(), and the upstream's own total when it is a count. False,
    leaving `usage` as it was, when either count is None: the caller then does what it does for an
    upstream that reported no usage (the documented estimate), so what a request is billed is never
    a number no real call could have used."""
    if input_tokens is None or output_tokens is None:
        return False
    usage.input_tokens = input_tokens
    usage.output_tokens = output_tokens
    usage.total_tokens = tokens(total_tokens) or input_tokens + output_tokens
    return True


def _prompt_chars(request: chat_pb2.ChatRequest) -> int:
    total = 0
    for m in request.messages:
        total += len(m.text)
        for p in m.parts:
            total += len(p.text)
        for c in m.tool_calls:
            total += len(c.function.arguments)
    return total


def set_estimated_usage(usage: usage_pb2.TokenUsage, request: chat_pb2.ChatRequest, output_chars: int) -> None:
    """The documented estimate (~4 characters a token) of a chat the upstream reported no usable
    usage for: its messages' text and tool-call arguments in, `output_chars` characters out."""
    prompt = -(-_prompt_chars(request) // 4)
    output = -(-output_chars // 4)
    usage.input_tokens = prompt
    usage.output_tokens = output
    usage.total_tokens = prompt + output
    usage.estimated = True


def scrub(text: str, provider: ProviderConfig, key: str | None) -> str:
    """Upstream text fit for a message a client sees: the provider's API key and the value of every
    header configured for it replaced by "[redacted]", then cut to MAX_MESSAGE characters.

    Upstreams, and proxies in front of them, echo what they were sent, and a configured header is as
    likely a credential as the key (an organisation id, a proxy's token). Every value, however
    short: a short one may cost a message some words, never a secret. One pass with the longest
    first, so where secrets overlap the longest is taken whole, and no "[redacted]" is scrubbed
    again; before the cut, which could otherwise keep the start of a secret it split."""
    secrets = [v for v in provider.headers.values() if v.strip()]
    if key:
        secrets.append(key)
    if secrets:
        secrets.sort(key=len, reverse=True)
        text = re.sub("|".join(map(re.escape, secrets)), "[redacted]", text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI, more precise) or `Retry-After` (seconds or an HTTP-date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0 and math.isfinite(value):
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if value >= 0 and math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def json_object(raw: bytes | str) -> dict[str, Any]:
    """Client JSON that should hold an object (extra_json, a tool result): the object, else {}
    (absent, not JSON, or not an object: what the adapters then leave out)."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def copy_sampling(request: chat_pb2.ChatRequest, body: dict[str, Any], names: Mapping[str, str]) -> None:
    """The request's sampling fields that are set (max_tokens, temperature, top_p, stop, n, seed,
    presence_penalty, frequency_penalty), into `body` under the provider's name for each in `names`."""
    for field, key in names.items():
        if field == "stop":
            if request.stop:
                body[key] = list(request.stop)
        elif request.HasField(field):
            body[key] = getattr(request, field)


class CountsTokensLocally:
    """count_tokens for providers without a counting endpoint: a local tokenizer for the upstream
    model when one is available (and `tokenizer` is set), else the documented estimate."""

    tokenizer = True

    async def count_tokens(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> routing_pb2.CountTokensResponse:
        from services.routing.tokens import count_locally  # tokens imports this module

        return count_locally(request, target.upstream_model, tokenizer=self.tokenizer)
