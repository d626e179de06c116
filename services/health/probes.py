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
from multidict import CIMultiDict

from services.config import OPENAI_COMPATIBLE_KINDS, ProviderConfig

DEFAULT_AZURE_API_VERSION = "2024-10-21"
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    status: str  # "ok" or "error"
    detail: str | None  # short, secret-free reason when status is "error"; None when ok
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _request_for(provider: ProviderConfig, key: str) -> tuple[str, dict[str, str], CIMultiDict[str]]:
    """(url, query params, headers) of the model-list call for this provider kind."""
    base = provider.base_url or ""
    # Case-insensitive, so a config header spelled "authorization" cannot end up sent twice
    # next to ours; the credential headers are set last and win.
    headers: CIMultiDict[str] = CIMultiDict(provider.headers)
    params: dict[str, str] = {}
    kind = provider.kind
    if kind in OPENAI_COMPATIBLE_KINDS:
        url = f"{base}/models"
        headers["Authorization"] = f"Bearer {key}"
    elif kind == "azure":
        url = f"{base}/openai/models"
        params["api-version"] = provider.api_version or DEFAULT_AZURE_API_VERSION
        headers["api-key"] = key
    elif kind == "anthropic":
        url = f"{base}/v1/models"
        headers["x-api-key"] = key
        headers["anthropic-version"] = ANTHROPIC_VERSION
    elif kind == "gemini":
        url = f"{base}/v1beta/models"
        # A header rather than ?key=: URLs end up in access logs, proxies and tracebacks.
        headers["x-goog-api-key"] = key
    else:
        raise ValueError(f"unsupported provider kind {kind!r}")
    return url, params, headers


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
    if provider.kind == "mock":
        return ProviderStatus("ok", None, 0)
    key = provider.api_key()
    if not key:
        where = provider.api_key_env or "api_key_env not set"
        return ProviderStatus("error", f"no API key configured ({where})", 0)

    started = time.perf_counter()

    def elapsed_ms() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        url, params, headers = _request_for(provider, key)
        async with session.get(
            url,
            params=params,
            headers=headers,
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
