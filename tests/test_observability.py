"""What an operator sees: Prometheus metrics, the overhead header, structured access logs and
OpenTelemetry traces received by a real OTLP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fuzz import raw_request
from tests.harness import ProcessGateway
from tests.test_billing import bill_config, ledger, topup
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
PROMPT = "the secret recipe is 4242-unique-prompt-text"


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as fake:
        yield fake


def test_metrics_count_requests_tokens_cost_and_upstream_attempts(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url, routing={"retries_per_deployment": 1, "allowed_fails_per_minute": 1000,
                                                                "backoff_base_seconds": 0.01}))
    topup(gw, "1")
    upstream.set_mode("openai", "fail", status=503, times=1)  # the first attempt fails, its retry answers
    r = requests.post(f"{gw.url}/v1/chat/completions", headers=auth(gw.admin_key), timeout=10,
                      json={"model": "remote", "messages": [{"role": "user", "content": PROMPT}]})
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    requests.get(f"{gw.url}/v1/models/nope", headers=auth(gw.admin_key), timeout=10)

    scraped = requests.get(f"{gw.url}/metrics", headers=auth(gw.admin_key), timeout=10)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    assert value(found, "switchyard_requests_total", rpc="RoutingService/CreateChatCompletion", surface="default", code="OK") == 1
    assert value(found, "switchyard_requests_total", rpc="RoutingService/GetModel", code="NOT_FOUND", reason="model_not_found") == 1
    assert value(found, "switchyard_tokens_total", model="remote", provider="up", direction="input") == usage["prompt_tokens"]
    assert value(found, "switchyard_tokens_total", model="remote", provider="up", direction="output") == usage["completion_tokens"]
    charged = -sum(e["amountNanoUsd"] for e in ledger(gw) if e["kind"] == "charge")
    assert charged > 0 and value(found, "switchyard_cost_nano_usd_total", model="remote") == charged
    assert value(found, "switchyard_upstream_requests_total", provider="up", outcome="error", attempt="first") == 1
    assert value(found, "switchyard_upstream_requests_total", provider="up", outcome="ok", attempt="retry") == 1
    assert value(found, "switchyard_gateway_overhead_seconds_count", rpc="RoutingService/CreateChatCompletion") == 1
    assert value(found, "switchyard_wallet_admission_seconds_count") == 1
    assert value(found, "process_cpu_seconds_total") > 0
    assert PROMPT not in scraped.text and gw.admin_key not in scraped.text


def test_request_path_histograms_and_counters_export_what_prometheus_client_would():
    """The request path's lean series (a sample is a dict update, no lock) must scrape exactly as
    prometheus_client's own Counter and Histogram would: buckets inclusive of their bound, cumulative,
    with _count and _sum, labelled series appearing on first use."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from services.telemetry.metrics import LeanCounter, LeanHistogram, _Lean

    buckets = (0.001, 0.01, 0.1, 1)
    observed = [0.0, 0.001, 0.0010001, 0.01, 0.5, 1, 7.5, 1e9]
    reference = CollectorRegistry(auto_describe=True)
    histogram = Histogram("h_seconds", "doc", ("rpc",), buckets=buckets, registry=reference)
    counter = Counter("c", "doc", ("kind",), registry=reference)
    Histogram("bare_seconds", "doc", buckets=buckets, registry=reference)
    lean = CollectorRegistry(auto_describe=True)
    lean_histogram = LeanHistogram("h_seconds", "doc", ("rpc",), buckets=buckets)
    lean_counter = LeanCounter("c", "doc", ("kind",))
    lean.register(_Lean([lean_histogram, lean_counter, LeanHistogram("bare_seconds", "doc", buckets=buckets)]))
    for i, amount in enumerate(observed):
        histogram.labels("a" if i % 3 else "b").observe(amount)
        lean_histogram.observe(("a" if i % 3 else "b",), amount)
        counter.labels("x").inc(amount)
        lean_counter.inc(("x",), amount)
    expected = {sample: v for sample, v in samples(generate_latest(reference).decode()).items() if not sample[0].endswith("_created")}
    assert samples(generate_latest(lean).decode()) == expected


def test_metrics_are_for_operator_admins_only(make_gateway):
    gw = make_gateway()
    operator = auth(gw.admin_key)
    requests.post(f"{gw.url}/v1/accounts", json={"name": "T", "accountId": "acct_t"}, headers=operator, timeout=10).raise_for_status()
    tenant = requests.post(f"{gw.url}/v1/keys", json={"name": "t", "accountId": "acct_t", "scopes": ["admin"]},
                           headers=operator, timeout=10).json()["key"]
    assert requests.get(f"{gw.url}/metrics", timeout=10).status_code == 401
    refused = requests.get(f"{gw.url}/metrics", headers=auth(tenant), timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"


def test_a_separate_metrics_listener_needs_no_key(make_gateway):
    gw = make_gateway(metrics={"port": 0})
    requests.get(f"{gw.url}/v1/models", headers=auth(gw.admin_key), timeout=10).raise_for_status()
    port = gw.process.metrics_port
    assert port
    scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert value(samples(scraped.text), "switchyard_requests_total", rpc="RoutingService/ListModels") == 1


def test_every_proxied_answer_says_what_the_gateway_itself_cost(make_gateway, upstream):
    gw = make_gateway(**bill_config(upstream.base_url))
    topup(gw, "1")
    body = {"model": "remote", "messages": [{"role": "user", "content": "hi"}]}
    for payload in (body, {**body, "stream": True}):
        started = time.perf_counter()
        r = requests.post(f"{gw.url}/v1/chat/completions", json=payload, headers=auth(gw.admin_key), timeout=10)
        total_ms = (time.perf_counter() - started) * 1000
        assert r.status_code == 200
        overhead = float(r.headers["X-Switchyard-Overhead-Ms"])
        upstream_ms = float(r.headers["X-Switchyard-Upstream-Ms"])
        assert 0 <= overhead < total_ms and upstream_ms > 0
    missing = requests.get(f"{gw.url}/v1/nowhere", headers=auth(gw.admin_key), timeout=10)
    assert missing.status_code == 404 and float(missing.headers["X-Switchyard-Overhead-Ms"]) >= 0


def test_json_access_log_has_one_line_per_request_and_no_secrets(tmp_path):
    gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={"SWITCHYARD_LOG_FORMAT": "json"}, cwd=tmp_path).start()
    try:
        r = requests.post(f"{gw.url}/v1/chat/completions", headers=auth(gw.admin_key), timeout=10,
                          json={"model": "mock-chat", "messages": [{"role": "user", "content": PROMPT}]})
        assert r.status_code == 200
        requests.get(f"{gw.url}/v1/nowhere?key=sk-in-the-query", timeout=10)
        deadline = time.monotonic() + 5
        lines: list[dict] = []
        while time.monotonic() < deadline and len(lines) < 2:
            lines = [json.loads(x) for x in gw.output if x.startswith("{")]
            lines = [x for x in lines if x.get("logger") == "switchyard.access"]
            time.sleep(0.05)
    finally:
        gw.terminate()
    chat = next(x for x in lines if x.get("rpc") == "RoutingService/CreateChatCompletion")
    assert chat["request_id"] == r.headers["X-Request-Id"] and chat["status"] == 200 and chat["model"] == "mock-chat"
    assert chat["key_id"].startswith("key_") and chat["account_id"] == "acct_default" and chat["provider"] == "mock"
    assert chat["route"] == "POST /v1/chat/completions" and chat["output_tokens"] > 0 and chat["latency_ms"] >= chat["overhead_ms"]
    unknown = next(x for x in lines if x.get("status") == 404)
    assert unknown["error_reason"] == "not_found"
    log = "".join(gw.output)
    assert PROMPT not in log and "sk-in-the-query" not in log
    assert log.count(gw.admin_key) == 1  # the first-start announcement, never a log line


# Paths anyone may send, no key needed, and the route each is logged as (URL parsing drops tabs and
# line breaks, and re-encodes backslashes): fields of their own, a terminal escape and a NUL, a
# line break, quotes, DEL and a right-to-left override.
FORGING_PATHS = {
    "fake-fields": ("/v1/x%20key_id=key_1%20account_id=acct_b%20status=200", "/v1/x key_id=key_1 account_id=acct_b status=200"),
    "terminal": ("/v1/y%1b%5b31mRED%00", "/v1/y\x1b[31mRED\x00"),
    "lines": ("/v1/z%0d%0a2026-01-01T00:00:00.000Z%20INFO%20access:%20status=200", "/v1/z2026-01-01T00:00:00.000Z INFO access: status=200"),
    "quotes": ("/v1/q%22%20status=200%20x=%5c%22%5cx41", '/v1/q" status=200 x=%5C"%5Cx41'),
    "others": ("/v1/o%7f%e2%80%ae%09end", "/v1/o\x7f\u202eend"),
}

_LOGFMT = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"=]+)(?: |$)')
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|.)")


def logfmt(text: str) -> dict[str, str]:
    """key=value pairs, values bare or quoted with backslash escapes; the pairs must make up the whole text."""
    fields, at = {}, 0
    while at < len(text):
        m = _LOGFMT.match(text, at)
        assert m, f"not logfmt at {at}: {text!r}"
        key, raw = m.groups()
        assert key not in fields, f"{key} twice: {text!r}"
        if raw.startswith('"'):
            raw = _ESCAPE.sub(lambda e: e[1] if len(e[1]) == 1 else chr(int(e[1][1:], 16)), raw[1:-1])
        fields[key], at = raw, m.end()
    return fields


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_request_can_forge_or_split_an_access_line(tmp_path, fmt):
    gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={"SWITCHYARD_LOG_FORMAT": fmt}, cwd=tmp_path).start()
    try:
        for name, (raw_path, _) in FORGING_PATHS.items():
            request = f"GET {raw_path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: forge-{name}\r\nConnection: close\r\n\r\n"
            status, _, body = raw_request("127.0.0.1", gw.http_port, request.encode())
            assert status == 404 and json.loads(body)["error"]["message"] == f"Unknown endpoint: GET {FORGING_PATHS[name][1]}"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "".join(gw.output).count("forge-") < len(FORGING_PATHS):
            time.sleep(0.05)
    finally:
        gw.terminate()
    log = "".join(gw.output)
    lines = log.split("\n")
    assert [c for c in log if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e"] == []
    for name, (_, path) in FORGING_PATHS.items():
        mine = [line for line in lines if f"forge-{name}" in line]
        assert len(mine) == 1, mine  # one request, one line
        if fmt == "json":
            fields = json.loads(mine[0])
        else:
            prefix, _, rest = mine[0].partition(" INFO access: ")
            assert rest and " " not in prefix, mine[0]
            fields = logfmt(rest)
        assert fields["request_id"] == f"forge-{name}" and fields["route"] == f"GET {path}"
        assert str(fields["status"]) == "404" and fields["error_reason"] == "not_found"
        assert "key_id" not in fields and "account_id" not in fields


def test_requests_the_edge_refuses_log_the_same_reason_code_on_every_surface(tmp_path):
    gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env={}, cwd=tmp_path).start()
    sent = {  # request id -> (method, path, body, the reason code every surface logs)
        "gemini-json": ("POST", "/v1beta/models/mock-chat:generateContent", b"{not json", "invalid_request"),
        "gemini-path": ("GET", "/v1beta/nowhere", None, "not_found"),
        "gemini-verb": ("DELETE", "/v1beta/models", None, "method_not_allowed"),
        "anthropic-json": ("POST", "/v1/messages", b"{not json", "invalid_request"),
        "templated-json": ("POST", "/api/v1/generate", b"{not json", "invalid_request"),
        "default-json": ("POST", "/v1/chat/completions", b"{not json", "invalid_request"),
    }
    try:
        for request_id, (method, path, body, _) in sent.items():
            r = requests.request(method, f"{gw.url}{path}", data=body, headers={**auth(gw.admin_key), "X-Request-Id": request_id,
                                                                                   "Content-Type": "application/json"}, timeout=10)
            assert r.status_code in (400, 404, 405), r.text
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(f"request_id={i} " in "".join(gw.output) for i in sent):
            time.sleep(0.05)
    finally:
        gw.terminate()
    logged = {}
    for request_id in sent:
        line = next(x for x in gw.output if f"request_id={request_id} " in x)
        fields = logfmt(line.rstrip("\n").partition(" INFO access: ")[2])
        logged[request_id] = (fields["route"], fields["error_reason"])
    assert logged == {i: (f"{method} {path}", reason) for i, (method, path, _, reason) in sent.items()}


# -- traces ---------------------------------------------------------------------------------------


class OtlpReceiver:
    """A real OTLP/gRPC trace receiver on 127.0.0.1 (and OTLP/HTTP on another port), keeping every span."""

    def __init__(self) -> None:
        self.spans: list = []
        self._lock = threading.Lock()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                receiver._keep(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Http(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver._keep(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self.http_port = self._http.server_address[1]

    def _keep(self, request) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), "")
                for scope in resource_spans.scope_spans:
                    self.spans.extend((service, span) for span in scope.spans)

    def __enter__(self) -> "OtlpReceiver":
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._grpc.stop(0)
        self._http.shutdown()

    def wait_for(self, names: set[str], timeout: float = 10.0) -> dict[str, tuple]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = {span.name: (service, span) for service, span in self.spans}
            if names <= set(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"spans {sorted(names - set(found))} not received; got {sorted(found)}")


CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SPANS = {"POST /v1/chat/completions", "switchyard.routing.v1.RoutingService/CreateChatCompletion",
         "chat mock-chat", "switchyard.admission", "switchyard.settlement"}


def _priced_mock_config(path) -> str:
    path.write_text(json.dumps({
        "models": {"priced-chat": {"input_usd_per_million_tokens": "1", "output_usd_per_million_tokens": "2",
                                   "deployments": [{"provider": "mock", "model": "mock-chat"}]}},
        "limits": {"default_rate_limit_per_minute": 1000},
    }))
    return str(path)


def _check_trace(receiver: OtlpReceiver, edge_service: str, rpc_service: str) -> None:
    found = receiver.wait_for(SPANS)
    (edge_svc, edge), (rpc_svc, rpc), (_, upstream) = (
        found["POST /v1/chat/completions"], found["switchyard.routing.v1.RoutingService/CreateChatCompletion"], found["chat mock-chat"],
    )
    assert (edge_svc, rpc_svc) == (edge_service, rpc_service)
    for name in SPANS:
        assert found[name][1].trace_id.hex() == CLIENT_TRACE, f"{name}: the client's traceparent is continued"
    assert edge.parent_span_id.hex() == CLIENT_SPAN
    assert rpc.parent_span_id == edge.span_id, "context crosses the edge→services hop"
    assert upstream.parent_span_id == rpc.span_id
    assert found["switchyard.admission"][1].parent_span_id == rpc.span_id
    attributes = {a.key: a.value for a in upstream.attributes}
    assert attributes["gen_ai.system"].string_value == "switchyard.mock"
    assert attributes["gen_ai.request.model"].string_value == "mock-chat"
    assert attributes["gen_ai.usage.output_tokens"].int_value > 0
    every_value = repr([a.value for _, s in receiver.spans for a in s.attributes])
    assert PROMPT not in every_value and "tk_live_" not in every_value


def _chat(url: str, key: str) -> None:
    r = requests.post(f"{url}/v1/chat/completions", timeout=10,
                      headers={**auth(key), "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
                      json={"model": "priced-chat", "messages": [{"role": "user", "content": PROMPT}]})
    assert r.status_code == 200, r.text


def _fund(url: str, key: str) -> None:
    requests.post(f"{url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "1"}, headers=auth(key),
                  timeout=10).raise_for_status()


def test_one_chat_request_is_one_connected_trace_embedded(tmp_path):
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.grpc_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
               "OTEL_BSP_SCHEDULE_DELAY": "50", "SWITCHYARD_CONFIG": _priced_mock_config(tmp_path / "c.yaml")}
        gw = ProcessGateway(["serve", "--port", "0", "--grpc-port", "0"], env=env, cwd=tmp_path).start()
        try:
            _fund(gw.url, gw.admin_key)
            _chat(gw.url, gw.admin_key)
            _check_trace(receiver, "switchyard", "switchyard")
        finally:
            gw.terminate()


def test_one_chat_request_is_one_connected_trace_split(tmp_path):
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.http_port}", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
               "OTEL_BSP_SCHEDULE_DELAY": "50", "SWITCHYARD_CONFIG": _priced_mock_config(tmp_path / "c.yaml")}
        services = ProcessGateway(["serve", "services", "--grpc-port", "0"], env=env, cwd=tmp_path).start()
        try:
            edge = ProcessGateway(["serve", "edge", "--port", "0", "--grpc-target", f"127.0.0.1:{services.grpc_port}"],
                                  env=env, cwd=tmp_path).start()
            try:
                _fund(edge.url, services.admin_key)
                _chat(edge.url, services.admin_key)
                _check_trace(receiver, "switchyard-edge", "switchyard-services")
            finally:
                edge.terminate()
        finally:
            services.terminate()


def test_tracing_is_off_without_an_endpoint(make_gateway):
    gw = make_gateway()
    assert not gw.process.runtime.telemetry.tracing.enabled


def test_the_grafana_dashboard_only_asks_for_metrics_the_gateway_exports(make_gateway):
    import re
    from pathlib import Path

    gw = make_gateway()
    exported = requests.get(f"{gw.url}/metrics", headers=auth(gw.admin_key), timeout=10).text
    families = {f.name for f in text_string_to_metric_families(exported)}
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "deploy/grafana/switchyard.json").read_text())
    assert dashboard["panels"] and dashboard["__inputs"][0]["pluginId"] == "prometheus"
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b(switchyard_[a-z_]+)", target["expr"]):
                base = re.sub(r"_(bucket|count|sum|total)$", "", name)
                assert base in families, f"panel {panel['title']!r} asks for {name}, which is not exported"
