"""Bad input found by the fuzz suites, named: each gets a clear 4xx in its surface's shape and
changes nothing."""

from __future__ import annotations

import base64
import socket
import time

import grpc
import pytest
import requests
from google.protobuf import timestamp_pb2

from switchyard.auth.v1 import auth_pb2, auth_pb2_grpc
from switchyard.billing.v1 import billing_pb2, billing_pb2_grpc
from tests.fuzz import raw_request

NINES = base64.urlsafe_b64encode(b"9" * 30).decode()


def error_of(r: requests.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    error = body["error"]
    assert error.get("requestId", error.get("request_id", body.get("request_id"))) == r.headers["X-Request-Id"]
    for internal in ("switchyard.", "Message type", "google.protobuf", "Error:", "Traceback"):
        assert internal not in error["message"]
    return error


@pytest.fixture(params=["sqlite", "postgresql"])
def gw(request, make_gateway):
    if request.param == "postgresql":
        return make_gateway(database_url=request.getfixturevalue("postgres_url"))
    return make_gateway()


@pytest.fixture
def admin(gw):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {gw.admin_key}"
    return session


def test_generation_logs_up_to_the_last_representable_day(gw, admin):
    r = admin.get(f"{gw.url}/api/v1/logs", params={"end_date": "9999-12-31", "start_date": "0001-01-01"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True


def test_usage_summaries_at_both_ends_of_the_calendar(gw, admin):
    """The default window is the 30 days before the end: an end in year 1's first month must not
    reach before 0001-01-01 (it was a 500), and the last representable second is an end like any."""
    error = error_of(admin.get(f"{gw.url}/v1/usage:summary", params={"endTime": "0001-01-01T00:00:00Z"}, timeout=10))
    assert error["code"] == "invalid_request" and error["param"] == "start_time"
    for params in ({"endTime": "0001-01-20T00:00:00Z"}, {"endTime": "9999-12-31T23:59:59Z"},
                   {"startTime": "9999-12-01T00:00:00Z", "endTime": "9999-12-31T23:59:59.999999999Z"}):
        r = admin.get(f"{gw.url}/v1/usage:summary", params=params, timeout=10)
        assert r.status_code == 200 and r.json() == {"buckets": []}, (params, r.text)


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/ledger"])
def test_a_page_token_beyond_int64_is_refused(gw, admin, path):
    error = error_of(admin.get(f"{gw.url}{path}", params={"pageToken": NINES}, timeout=10))
    assert error["code"] == "invalid_request" and error["param"] == "page_token"


def test_nul_characters_are_refused_in_query_path_and_body(gw, admin):
    error = error_of(admin.get(f"{gw.url}/v1/usage", params={"model": "\x00"}, timeout=10))
    assert error["param"] == "model" and "NUL" in error["message"]

    error = error_of(admin.get(f"{gw.url}/v1/keys/%00", timeout=10))
    assert error["param"] == "key_id"

    before = admin.get(f"{gw.url}/v1/keys", timeout=10).json()["keys"]
    error = error_of(admin.post(f"{gw.url}/v1/keys", json={"name": "a\u0000b"}, timeout=10))
    assert error["param"] == "name"
    assert admin.get(f"{gw.url}/v1/keys", timeout=10).json()["keys"] == before  # nothing written

    # The vendor surfaces name the field as their clients wrote it: the body is the chat request.
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "a\u0000b"}]}
    error = error_of(admin.post(f"{gw.url}/v1/chat/completions", json=chat, timeout=10))
    assert error["param"].startswith("messages[0].") and "chat." not in error["message"]

    error = error_of(admin.post(f"{gw.url}/api/v1/generate", json={"prompt": "a\u0000b"}, timeout=10))
    assert error["code"] == "VALIDATION_ERROR" and error["field"] == "prompt"


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"name": "x", "n": 1}, "n", "Unknown field 'n'"),
        ({"name": 7}, "name", "expected a string"),
        ({"name": "x", "rateLimitPerMinute": 2**31}, "rateLimitPerMinute", "integer from -2147483648 to 2147483647"),
        ({"name": "x", "rateLimitPerMinute": "9" * 30}, "rateLimitPerMinute", "integer"),
        ({"name": "x", "expireTime": "2026-13-45T00:00:00Z"}, "expireTime", "RFC 3339 timestamp"),
        ({"name": "x", "scopes": "admin"}, "scopes", "expected an array"),
    ],
)
def test_body_errors_name_the_field_as_the_default_surface_spells_it(gateway, admin_headers, body, param, words):
    r = requests.post(f"{gateway.url}/v1/keys", json=body, headers=admin_headers, timeout=10)
    error = error_of(r)
    assert error["param"] == param and words in error["message"], error


def test_two_members_of_one_oneof_are_refused_by_name(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "1", "amountNanoUsd": 5},
                      headers=admin_headers, timeout=10)
    assert "Only one of 'amountUsd' and 'amountNanoUsd'" in error_of(r)["message"]


def test_templated_errors_speak_snake_case(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/api/v1/generate", json={"prompt": "x", "max_tokens": "many"}, headers=admin_headers, timeout=10)
    error = error_of(r)
    assert error["field"] == "max_tokens" and "'max_tokens'" in error["message"]
    r = requests.get(f"{gateway.url}/api/v1/logs", params={"limit": "9" * 30}, headers=admin_headers, timeout=10)
    assert error_of(r)["field"] == "limit"


def test_a_body_nested_too_deeply_is_a_400(gateway, admin_headers):
    options = '{"a":' * 900 + "1" + "}" * 900
    r = requests.post(f"{gateway.url}/api/v1/generate", data=f'{{"prompt":"x","options":{options}}}',
                      headers={**admin_headers, "Content-Type": "application/json"}, timeout=10)
    assert error_of(r)["field"] == "options"


def _send(gateway, head: bytes) -> tuple[int, dict[str, str], bytes]:
    return raw_request("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]), head)


@pytest.mark.parametrize("method, path, status", [
    ("TRACE", "/v1/keys", 405), ("PATCH", "/v1/chat/completions", 405), ("OPTIONS", "/v1/keys", 405),
    ("GET", "/v1/%0d%0aSet-Cookie:%20x", 404), ("TRACE", "/healthz", 405), ("GET", "/nowhere", 404),
])
def test_the_edge_answers_unknown_methods_and_paths_in_json(gateway, method, path, status):
    got, headers, body = _send(gateway, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert got == status, body
    assert headers["content-type"] == "application/json" and headers["x-request-id"].startswith("req_")
    if status == 405:
        assert "allow" in headers
    assert b'"error"' in body


def test_a_method_httptools_does_not_know_is_a_json_400_in_the_surface_shape(gateway):
    status, headers, body = _send(gateway, b"FOO /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert b'"type":"error"' in body  # Anthropic's shape on /v1/messages


def test_request_heads_above_the_limits_get_431(gateway, admin_headers):
    auth = f"Authorization: {admin_headers['Authorization']}\r\n".encode()
    huge = b"GET /v1/keys HTTP/1.1\r\nHost: x\r\n" + auth + b"X-Big: " + b"a" * (4 << 20) + b"\r\n\r\n"
    status, headers, body = _send(gateway, huge)
    assert status == 431 and headers["content-type"] == "application/json" and headers["x-request-id"].startswith("req_")
    assert b'"code":"headers_too_large"' in body

    many = b"GET /v1/keys HTTP/1.1\r\nHost: x\r\n" + auth + b"".join(b"X-H%d: 1\r\n" % i for i in range(2000)) + b"\r\n"
    status, _, body = _send(gateway, many)
    assert status == 431 and b"header fields" in body

    # Ordinary requests, and ones near the limits, are unaffected.
    near = {f"X-H{i}": "1" for i in range(90)} | {"X-Big": "a" * 60_000} | admin_headers
    assert requests.get(f"{gateway.url}/v1/keys", headers=near, timeout=10).status_code == 200


def test_header_limits_are_configurable(make_gateway):
    gw = make_gateway(limits={"max_header_bytes": 8192, "max_headers": 20})
    r = requests.get(f"{gw.url}/v1/keys", headers={"X-Big": "a" * 9000}, timeout=10)
    assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"
    r = requests.get(f"{gw.url}/v1/keys", headers={f"X-H{i}": "1" for i in range(25)}, timeout=10)
    assert r.status_code == 431


# --- gRPC ---------------------------------------------------------------------------------------


def _field_of(err: grpc.RpcError) -> str:
    from google.rpc import error_details_pb2, status_pb2

    (raw,) = [v for k, v in err.trailing_metadata() if k == "grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    status_pb2.Status.FromString(raw).details[0].Unpack(info)
    return info.metadata.get("field", "")


@pytest.mark.parametrize("seconds, nanos", [(2**62, 0), (253402300800, 0), (-62135596801, 0), (0, -1), (0, 10**9)])
def test_out_of_range_timestamps_over_grpc_are_invalid_argument(gateway, seconds, nanos):
    metadata = [("authorization", f"Bearer {gateway.admin_key}")]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        keys = auth_pb2_grpc.AuthServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            keys.CreateKey(auth_pb2.CreateKeyRequest(name="x", expire_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)),
                           metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _field_of(caught.value) == "expire_time"
        billing = billing_pb2_grpc.BillingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            billing.ListUsage(billing_pb2.ListUsageRequest(start_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)),
                              metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _field_of(caught.value) == "start_time"


def test_undefined_enum_numbers_and_undecodable_messages_over_grpc(gateway):
    metadata = [("authorization", f"Bearer {gateway.admin_key}")]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            auth_pb2_grpc.AuthServiceStub(channel).ListKeys(auth_pb2.ListKeysRequest(state=99), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _field_of(caught.value) == "state"
        # name = b"\xff\xfe": invalid UTF-8 in a proto3 string, which no Python client can even build.
        raw = channel.unary_unary("/switchyard.auth.v1.AuthService/CreateKey")
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\x0a\x02\xff\xfe", metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\x0a\x02\xff\xfe")  # without a key, the key is what is wrong
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_nul_over_grpc_names_the_field(gateway):
    metadata = [("authorization", f"Bearer {gateway.admin_key}")]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            auth_pb2_grpc.AuthServiceStub(channel).CreateKey(auth_pb2.CreateKeyRequest(name="ok", scopes=["a\x00"]), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _field_of(caught.value) == "scopes[0]"


def test_a_multipart_boundary_the_parser_refuses_is_a_400(gateway, admin_headers):
    boundary = "b" * 257
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n--{boundary}--\r\n").encode()
    r = requests.post(f"{gateway.url}/v1/images/edits", data=body, timeout=10,
                      headers={**admin_headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "boundary" in error_of(r)["message"]
    # A broken part says so without the parser's own state-machine wording.
    r = requests.post(f"{gateway.url}/v1/images/edits", data=b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--y", timeout=10,
                      headers={**admin_headers, "Content-Type": "multipart/form-data; boundary=x"})
    message = error_of(r)["message"]
    assert "multipart/form-data" in message and "index" not in message and "character" not in message


def test_compressed_and_non_utf8_bodies_are_refused_in_plain_words(gateway, admin_headers):
    import gzip

    chat = b'{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}'
    r = requests.post(f"{gateway.url}/v1/chat/completions", data=gzip.compress(chat), timeout=10,
                      headers={**admin_headers, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert "Content-Encoding" in error_of(r)["message"]
    r = requests.post(f"{gateway.url}/v1/chat/completions", data=chat.decode().encode("utf-16"), timeout=10,
                      headers={**admin_headers, "Content-Type": "application/json"})
    message = error_of(r)["message"]
    assert "UTF-8" in message and "str " not in message and "surrogates" not in message
    r = requests.post(f"{gateway.url}/v1/chat/completions", data=chat, timeout=10,
                      headers={**admin_headers, "Content-Type": "application/json", "Content-Encoding": "identity"})
    assert r.status_code == 200, r.text


def test_a_client_gone_before_its_body_is_whole_is_no_server_error(gateway, admin_headers, caplog):
    from tests.fuzz import raw_request

    host, port = "127.0.0.1", int(gateway.url.rsplit(":", 1)[1])
    with caplog.at_level("ERROR"):
        for head in (b"Content-Length: 1000\r\n", b"Transfer-Encoding: chunked\r\n"):
            request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: " + admin_headers["Authorization"].encode()
                       + b"\r\nContent-Type: application/json\r\n" + head + b"\r\n" + (b"100\r\n" if b"chunked" in head else b"") + b'{"model":')
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(request)
            status, _, _ = raw_request(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status == 200
        time.sleep(0.5)  # the edge notices the disconnects
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]


def test_errors_quote_a_huge_model_name_shortened(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/v1/chat/completions", json={"model": "m" * 100_000, "messages": [{"role": "user", "content": "hi"}]},
                      headers=admin_headers, timeout=10)
    error = error_of(r, 404)
    assert error["code"] == "model_not_found" and len(r.content) < 2_000


def test_a_model_of_another_mode_is_named_with_the_right_article(gateway, admin_headers):
    r = requests.post(f"{gateway.url}/v1/chat/completions", json={"model": "mock-embed", "messages": [{"role": "user", "content": "hi"}]},
                      headers=admin_headers, timeout=10)
    assert "is an embedding model" in error_of(r)["message"]


def test_a_usage_window_that_ends_before_it_starts_is_refused(gateway, admin_headers):
    params = {"startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}
    for path in ("/v1/usage", "/v1/usage:summary"):
        error = error_of(requests.get(f"{gateway.url}{path}", params=params, headers=admin_headers, timeout=10))
        assert error["param"] == "start_time" and "before" in error["message"]


def test_an_integer_beyond_64_bits_is_out_of_range_not_a_decimal(gateway, admin_headers):
    body = b'{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1180591620717411303424}'
    r = requests.post(f"{gateway.url}/v1/chat/completions", data=body, timeout=10,
                      headers={**admin_headers, "Content-Type": "application/json"})
    error = error_of(r)
    assert error["param"] == "max_tokens" and "above maximum" in error["message"] and "decimal" not in error["message"]


def test_a_message_nested_too_deeply_says_so_on_the_anthropic_surface(gateway, admin_headers):
    deep = '{"a":' * 600 + "1" + "}" * 600
    body = ('{"model": "mock-chat", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", '
            f'"tool_use_id": "t", "content": "x"}}]}}], "tools": [{{"name": "f", "input_schema": {deep}}}]}}')
    r = requests.post(f"{gateway.url}/v1/messages", data=body, timeout=10,
                      headers={**admin_headers, "Content-Type": "application/json", "anthropic-version": "2023-06-01"})
    assert r.status_code == 400, r.text
    assert "nested too deeply" in r.json()["error"]["message"]
