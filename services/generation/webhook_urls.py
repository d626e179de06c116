"""Which webhook URLs the gateway may POST to: http(s) to public addresses only (SSRF guard).

A webhook URL is chosen by the caller, so without this guard the gateway could be made to reach
its own loopback services, the private network or a cloud metadata endpoint. Checking the URL once
is not enough: its name may resolve elsewhere by the time it is delivered (DNS rebinding), so the
delivery session resolves through `UrlGuard.resolver()`, which applies the same rule to the
addresses it is about to connect to. IP literals never reach a resolver in aiohttp, so
`check_syntax` judges them itself; the dispatcher runs it before every attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba): the classic SSRF
# prize, named as such in the error. Most fall in ranges refused anyway; Alibaba's is in CGNAT space.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; Python counts it neither private nor global
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")


class WebhookUrlError(ValueError):
    """A webhook URL the gateway will not deliver to; the message is meant for the API's caller."""


class AddressRefused(OSError):
    """Raised by the guarded resolver. An OSError, so aiohttp reports it as a connection error
    (ClientConnectorError whose os_error is this) rather than crashing the session."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), which is where it really goes."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: Address) -> str | None:
    """Why a webhook may not reach `address` ("private", "loopback", …), or None for a public address."""
    address = _embedded_ipv4(address) or address
    if address in _METADATA:
        return "a cloud metadata address"
    for reason, refused in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("in the shared (CGNAT) range", address in _SHARED),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if refused:
            return reason
    return None


def _parse_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


class UrlGuard:
    def __init__(self, allow_hosts: list[str]) -> None:
        self._allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._allowed_names: set[str] = set()
        for entry in allow_hosts:
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
            except ValueError:
                self._allowed_names.add(_normal_host(entry.strip()))

    def _address_allowed(self, address: Address) -> bool:
        embedded = _embedded_ipv4(address)
        for candidate in (address, embedded):
            if candidate is not None and any(candidate in network for network in self._allowed_networks):
                return True
        return refusal_reason(address) is None

    def _refuse_address(self, host: str, address: Address) -> str | None:
        """The user-facing refusal for connecting to `address` (resolved from `host`), or None."""
        if _normal_host(host) in self._allowed_names or self._address_allowed(address):
            return None
        return f"webhook_url must resolve to a public address; {address} is {refusal_reason(address)}."

    def check_syntax(self, url: str) -> None:
        """http(s), a host, no credentials, at most 2048 characters; an IP literal must be allowed.

        Needs no DNS, so it is cheap enough to run on every request and before every attempt.
        """
        if len(url) > MAX_URL_LENGTH:
            raise WebhookUrlError(f"webhook_url must be at most {MAX_URL_LENGTH} characters.")
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
            raise WebhookUrlError("webhook_url must not contain spaces or control characters.")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            raise WebhookUrlError("webhook_url is not a valid URL.") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise WebhookUrlError("webhook_url must be an http:// or https:// URL.")
        if "@" in parts.netloc:
            raise WebhookUrlError("webhook_url must not contain a user name or password.")
        host = parts.hostname
        if not host:
            raise WebhookUrlError("webhook_url must name a host.")
        address = _parse_address(host)
        if address is None:
            try:
                ascii_host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise WebhookUrlError("webhook_url has an invalid host name.") from None
            if not _HOST_NAME.match(ascii_host):
                raise WebhookUrlError("webhook_url has an invalid host name.")
            return
        refusal = self._refuse_address(host, address)
        if refusal:
            raise WebhookUrlError(refusal)

    async def check(self, url: str) -> None:
        """`check_syntax`, then every address the host resolves to must be allowed."""
        self.check_syntax(url)
        parts = urlsplit(url)
        host = parts.hostname
        if _parse_address(host) is not None:
            return
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS)
        except (OSError, TimeoutError, UnicodeError):
            raise WebhookUrlError(f"webhook_url host {host} does not resolve.") from None
        if not infos:
            raise WebhookUrlError(f"webhook_url host {host} does not resolve.")
        for *_, sockaddr in infos:
            refusal = self._refuse_address(host, ipaddress.ip_address(sockaddr[0]))
            if refusal:
                raise WebhookUrlError(refusal)

    def resolver(self) -> AbstractResolver:
        return _GuardedResolver(self)


class _GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the whole name if any of its addresses is refused."""

    def __init__(self, guard: UrlGuard) -> None:
        self._guard = guard
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = self._guard._refuse_address(host, ipaddress.ip_address(result["host"]))
            if refusal:
                raise AddressRefused(refusal)
        return results

    async def close(self) -> None:
        await self._inner.close()
