"""Fuzz every REST binding (from the HttpRule annotations) on SQLite and PostgreSQL.

For each answer: never a 5xx, errors in the surface's own JSON shape with the X-Request-Id, and no
internal detail (proto type names, Python exception names, stack traces) in the message.
"""

from __future__ import annotations

import pytest

from tests import fuzz

ROUTES = fuzz.routes()
fuzzed = fuzz.fuzzed_gateway_fixture()


def send(gw, case: fuzz.Case, key: str | None) -> tuple[int, dict[str, str], bytes]:
    port = int(gw.url.rsplit(":", 1)[1])
    # Targets are percent-encoded ASCII; raw bytes in paths are test_odd_paths_and_methods' business.
    head = [f"{case.method} {case.target} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if key:
        head.append(f"Authorization: Bearer {key}".encode())
    if case.content_type is not None:
        head.append(f"Content-Type: {case.content_type}".encode("latin-1"))
    body = case.body or b""
    if case.body is not None or case.method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}".encode())
    return fuzz.raw_request("127.0.0.1", port, b"\r\n".join(head) + b"\r\n\r\n" + body)


def problems(gw, case: fuzz.Case) -> list[str]:
    status, headers, body = send(gw, case, gw.admin_key if case.key else None)
    if not status:
        return ["connection closed without an answer"]
    return fuzz.answer_problems(case.surface, status, headers, body)


@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_fuzz_binding(fuzzed, route):
    gw, ids = fuzzed
    fuzz.sweep(fuzz.route_cases(route, ids), lambda c: problems(gw, c))


def test_every_binding_is_fuzzed():
    # A new RPC annotation becomes a fuzzed route by itself; vendor-shaped routes need a body here.
    assert {r.surface for r in ROUTES} == {"default", "anthropic", "gemini", "templated"}
    for route in ROUTES:
        if route.binding.codec is not None and route.binding.body:
            assert route.template in fuzz.VENDOR_BODIES or route.template in fuzz.MULTIPART_FORMS, route.id


ODD_TARGETS = [
    "/v1/keys/%00", "/%00", "/v1/%0d%0a", "/v1/keys/%0d%0a", "/v1/%0d%0aSet-Cookie:%20x", "/v1/../v1/keys", "/v1/keys/..",
    "/v1/keys/%2e%2e", "/" + "a" * 8000, "/v1/keys/" + "9" * 3000, "/v1//keys", "//", "/v1/keys/", "/v1/keys?%zz=1",
    "/v1/keys?pageSize=%FF", "/v1/keys/%FF", "/v1/messages/%0d%0a", "/v1beta/models/%00:generateContent",
    "/v1beta/%0d%0a", "/api/v1/%00", "/api/v1/logs?end_date=%0d%0a", "*", "/healthz/%00", "/v1/keys;x=1", "/v1/keys#frag",
]
ODD_METHODS = ["TRACE", "PATCH", "OPTIONS", "CONNECT", "FOO", "get", "M-SEARCH"]


def test_odd_paths_and_methods_get_json_errors(fuzzed):
    gw, _ = fuzzed
    port = int(gw.url.rsplit(":", 1)[1])
    failures = []
    requests_ = [(m, t) for m in ("GET", "POST", *ODD_METHODS) for t in ODD_TARGETS]
    requests_ += [("GET", "/v1/keys/\xff".encode("latin-1")), ("GET", b"/v1/\xc3\x28"), ("GET", "/v1/models/\u00e9".encode())]
    for method, target in requests_:
        raw = target if isinstance(target, bytes) else target.encode()
        head = method.encode() + b" " + raw + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        head += f"Authorization: Bearer {gw.admin_key}\r\nContent-Length: 0\r\n\r\n".encode()
        status, headers, body = fuzz.raw_request("127.0.0.1", port, head)
        path = raw.split(b"?")[0].decode("latin-1")
        problems = fuzz.shape_problems(fuzz.surface_of(path), status, headers, body) if status >= 400 else []
        if status == 0:
            problems = ["closed without an answer"]
        if problems:
            failures.append(f"{method} {raw[:60]!r} -> {status}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


ODD_HEADERS = [
    b"X-Request-Id: \x00", b"X-Request-Id: a\rb", b"X-Request-Id: " + b"r" * 5000, b"X-Request-Id: \xff\xfe",
    b"Authorization: Bearer \xff\xfe", b"Authorization: " + b"B" * 60000, b"Authorization: Bearer", b"x-api-key: \xff",
    b"x-goog-api-key: " + b"k" * 5000, b"Content-Length: -1", b"Content-Length: abc", b"Content-Length: 99999999999999999999",
    b"Content-Length: 1\r\nContent-Length: 2", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", b"Content-Type: \x00",
    b"Content-Type: application/json; charset=\xff", b"Content-Encoding: gzip", b"Expect: 100-continue", b"Host: \x00",
    b"Connection: upgrade\r\nUpgrade: websocket", b"Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__",
    b": empty-name", b"Bad Header: x", b"X-Folded: a\r\n b",
]


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/keys", b'{"name":"h"}'), ("POST", "/v1/messages", b"{}"), ("GET", "/api/v1/balance", b""), ("GET", "/v1beta/models", b""),
])
def test_odd_headers_get_json_answers(fuzzed, method, path, body):
    gw, _ = fuzzed
    port = int(gw.url.rsplit(":", 1)[1])
    failures = []
    for header in ODD_HEADERS:
        name = header.split(b":")[0].lower()
        auth = b"" if name in (b"authorization", b"x-api-key", b"x-goog-api-key") else f"Authorization: Bearer {gw.admin_key}\r\n".encode()
        length = b"" if name in (b"content-length", b"transfer-encoding") else b"Content-Length: %d\r\n" % len(body)
        request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode() + auth + length + header + b"\r\n\r\n" + body
        status, headers, answer = fuzz.raw_request("127.0.0.1", port, request, timeout=10)
        problems = fuzz.answer_problems(fuzz.surface_of(path), status, headers, answer) if status else ["closed without an answer"]
        if problems:
            failures.append(f"{header[:60]!r} -> {status}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
