"""One cheap, authenticated call per upstream provider: list the models.

Listing models costs no tokens, yet proves three things at once: the base URL is right, the
provider answers, and it accepts our credentials. `probe` never raises for network or HTTP
problems; it turns them into a `ProviderStatus` whose `detail` is safe to show to anyone
(no API key, no response body - an upstream error body may echo what we sent).
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass

import aiohttp

from services.config import ProviderConfig
from services.routing.adapters.kinds import PROVIDER_KINDS, adapter_class


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    status: str  # "ok" or "error"
    detail: str | None  # short, secret-free reason when status is "error"; None when ok
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _http_status_ok(status: int) -> bool:
    if 200 <= status < 300:
        return True
    # 429 means the key is being throttled: the provider is up and has accepted our credentials
    # far enough to count them against a quota, so it is reachable and usable as soon as the
    # window passes. Calling it "error" would page people over a busy-but-healthy provider.
    return status == 429


def _connection_detail(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError) or getattr(os_error, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    reason = getattr(os_error, "strerror", None) or type(os_error).__name__
    return f"connection failed ({reason})"


async def probe(session: aiohttp.ClientSession, provider: ProviderConfig, timeout: float) -> ProviderStatus:
    """List the provider's models once, within `timeout` seconds, and report ok or error."""
    if not PROVIDER_KINDS[provider.kind].upstream:
        return ProviderStatus("ok", None, 0)
    key = provider.api_key()
    if not key:
        where = provider.api_key_env or "api_key_env not set"
        return ProviderStatus("error", f"no API key configured ({where})", 0)

    started = time.perf_counter()

    def elapsed_ms() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        # Each kind's adapter knows its model-list call and credential headers.
        request = adapter_class(provider.kind).probe_request(provider, key)
        async with session.get(
            request.url,
            params=request.params,
            headers=request.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # A redirect would carry api-key / x-api-key (aiohttp only strips Authorization)
            # to wherever the Location points; a model list never legitimately redirects.
            allow_redirects=False,
        ) as response:
            status = response.status
        if _http_status_ok(status):
            return ProviderStatus("ok", None, elapsed_ms())
        return ProviderStatus("error", f"HTTP {status}", elapsed_ms())
    except TimeoutError:  # aiohttp's own timeout errors subclass it too
        return ProviderStatus("error", f"timeout after {float(timeout)}s", elapsed_ms())
    except aiohttp.ClientSSLError:
        return ProviderStatus("error", "TLS error", elapsed_ms())
    except aiohttp.ClientConnectorError as exc:
        return ProviderStatus("error", _connection_detail(exc), elapsed_ms())
    except aiohttp.ClientError as exc:
        return ProviderStatus("error", f"connection error ({type(exc).__name__})", elapsed_ms())
    except Exception as exc:  # noqa: BLE001
        # Only the type: messages of e.g. a header-validation ValueError quote the header value,
        # which here is the key.
        return ProviderStatus("error", f"probe failed ({type(exc).__name__})", elapsed_ms())
