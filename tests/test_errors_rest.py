"""Every row of the error table this gateway can reach today, over REST, in the documented shape."""

from __future__ import annotations

import socket
import sqlite3

import openai
import pytest
import requests


def assert_error(r: requests.Response, status: int, code: str, type_: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == {"code", "message", "status", "requestId", "type", "param"}
    assert (error["code"], error["status"], error["type"]) == (code, status, type_)
    assert error["message"]
    assert error["requestId"] == r.headers["X-Request-Id"]
    assert "Traceback" not in r.text
    return error


def test_missing_api_key(gateway):
    r = requests.get(f"{gateway.url}/v1/health/llm", timeout=10)
    assert_error(r, 401, "missing_api_key", "authentication_error")
    assert "X-RateLimit-Limit" not in r.headers


@pytest.mark.parametrize("header", ["Bearer tk_live_" + "x" * 32, "Bearer nonsense", "Bearer " + "tk_live_" + "é" * 32])
def test_invalid_api_key(gateway, header):
    r = requests.get(f"{gateway.url}/v1/health/llm", headers={"Authorization": header.encode()}, timeout=10)
    error = assert_error(r, 401, "invalid_api_key", "authentication_error")
    assert "tk_live_" not in error["message"]  # the key is never echoed


def test_malformed_authorization_is_a_missing_key(gateway):
    r = requests.get(f"{gateway.url}/v1/health/llm", headers={"Authorization": "Basic abc"}, timeout=10)
    assert_error(r, 401, "missing_api_key", "authentication_error")


def test_malformed_json(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/v1/keys", data=b'{"name": ', headers=admin_headers, timeout=10)
    error = assert_error(r, 400, "invalid_request", "invalid_request_error")
    assert "JSON" in error["message"]


def test_unknown_query_parameter(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1/health/llm", params={"verbose": "1"}, headers=admin_headers, timeout=10)
    error = assert_error(r, 400, "invalid_request", "invalid_request_error")
    assert error["param"] == "verbose"


def test_bad_enum_in_query(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1/keys", params={"state": "sleepy"}, headers=admin_headers, timeout=10)
    error = assert_error(r, 400, "invalid_request", "invalid_request_error")
    assert "active" in error["message"]


def test_unknown_endpoint(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1/nothing/here", headers=admin_headers, timeout=10)
    assert_error(r, 404, "not_found", "invalid_request_error")


def test_unknown_resource(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1/keys/key_doesnotexist", headers=admin_headers, timeout=10)
    assert_error(r, 404, "not_found", "invalid_request_error")


def test_wrong_method(gateway, admin_headers):
    r = requests.put(f"{gateway.url}/v1/keys", json={}, headers=admin_headers, timeout=10)
    assert_error(r, 405, "method_not_allowed", "invalid_request_error")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_body_over_the_limit_is_refused_without_reading_it(make_gateway):
    gw = make_gateway(limits={"max_body_bytes": 4096})
    headers = {"Authorization": f"Bearer {gw.admin_key}", "Content-Type": "application/json"}
    # Declared too large: refused on the header alone, although we never send the body.
    with socket.create_connection(("127.0.0.1", gw.process.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n" + b"{" * 100
        )
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            received += chunk
    answer = received.decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":"payload_too_large"' in answer
    # Chunked, without a length: counted as it streams.
    def chunks():
        for _ in range(10):
            yield b" " * 1024
    r = requests.post(f"{gw.url}/v1/keys", data=chunks(), headers=headers, timeout=10)
    assert_error(r, 413, "payload_too_large", "invalid_request_error")
    # Just under the limit is fine.
    small = b'{"name":"ok"}' + b" " * 3000
    assert requests.post(f"{gw.url}/v1/keys", data=small, headers=headers, timeout=10).status_code == 200


def test_rate_limited(make_gateway):
    gw = make_gateway(limits={"default_rate_limit_per_minute": 3})
    headers = {"Authorization": f"Bearer {gw.admin_key}"}
    seen = [requests.get(f"{gw.url}/v1/health/llm", headers=headers, timeout=10) for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["2", "1", "0", "0"]
    limited = seen[-1]
    error = assert_error(limited, 429, "rate_limited", "rate_limit_error")
    assert "3 requests per minute" in error["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert int(limited.headers["X-RateLimit-Reset"]) >= int(seen[0].headers["X-RateLimit-Reset"])


def test_internal_error_hides_internals(gateway, admin_headers, tmp_path):
    # A real fault: the accounts table disappears under the running gateway.
    db = sqlite3.connect(tmp_path / "switchyard.db")
    db.execute("DROP TABLE accounts")
    db.commit()
    db.close()
    r = requests.post(f"{gateway.url}/v1/keys", json={"name": "x"}, headers=admin_headers, timeout=10)
    error = assert_error(r, 500, "internal_error", "api_error")
    assert error["message"] == "Internal error."
    assert "accounts" not in r.text and "sqlite" not in r.text.lower()


def test_service_unavailable_when_the_services_are_down(tmp_path):
    from tests.harness import ProcessGateway

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    edge = ProcessGateway(
        ["serve", "edge", "--port", "0", "--grpc-target", f"127.0.0.1:{dead}"], env={}, cwd=tmp_path
    ).start()
    try:
        r = requests.get(f"{edge.url}/v1/health/llm", headers={"Authorization": "Bearer x"}, timeout=30)
        assert_error(r, 503, "service_unavailable", "api_error")
        assert requests.get(f"{edge.url}/healthz", timeout=10).status_code == 503
    finally:
        assert edge.terminate() == 0


def test_request_id_is_kept_when_sane_and_replaced_otherwise(gateway):
    r = requests.get(f"{gateway.url}/v1/health/llm", headers={"X-Request-Id": "trace-123.abc"}, timeout=10)
    assert r.headers["X-Request-Id"] == "trace-123.abc" == r.json()["error"]["requestId"]
    r = requests.get(f"{gateway.url}/v1/health/llm", headers={"X-Request-Id": "bad id\twith junk"}, timeout=10)
    assert r.headers["X-Request-Id"].startswith("req_")
    r = requests.get(f"{gateway.url}/v1/nope", timeout=10)
    assert r.headers["X-Request-Id"].startswith("req_") and r.json()["error"]["requestId"] == r.headers["X-Request-Id"]


def test_success_responses_carry_a_request_id(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1/health/llm", headers={**admin_headers, "X-Request-Id": "mine-1"}, timeout=10)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "mine-1"


def test_openai_sdk_raises_the_matching_exception_classes(make_gateway):
    gw = make_gateway(limits={"default_rate_limit_per_minute": 2})
    good = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    assert good.get("/health/llm", cast_to=object)["status"] == "ok"
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key="tk_live_" + "0" * 32, max_retries=0).get("/health/llm", cast_to=object)
    assert err.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError):
        good.get("/no-such-endpoint", cast_to=object)
    with pytest.raises(openai.BadRequestError) as err:
        good.post("/keys", body={"name": ""}, cast_to=object)
    assert err.value.param == "name"
    with pytest.raises(openai.RateLimitError) as err:
        good.get("/health/llm", cast_to=object)
    assert err.value.code == "rate_limited"
    assert err.value.response.headers["retry-after"]
