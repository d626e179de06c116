"""The codec table is tied to the contract: every codec names a binding an RPC's google.api.http
annotation declares, every vendor-shaped binding has a codec, and the edge refuses to start when a
codec's binding is renamed away. Each binding answers errors in the surface declared next to its
codec; paths no binding matches, and requests refused before routing, keep the shape they had when
the surface was chosen by path prefix."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
import requests

from edge.codecs import CODECS, SERVICE_SURFACES, ChatDialect, chat_codec, route_table
from edge.errors import ANTHROPIC, DEFAULT, GEMINI, TEMPLATED
from edge.httprule import parse_template
from edge.routes import BindingKey, RouteTable, RouteTableError
from services.policy import service_descriptors
from switchyard.routing.v1 import chat_pb2, routing_pb2
from tests import fuzz

TABLE = route_table()
BINDINGS = {binding.key: binding for binding in TABLE.bindings}
# The data plane: its JSON is a vendor's (OpenAI, Anthropic, Gemini, Responses, media) on every binding.
DATA_PLANE = "/switchyard.routing.v1.RoutingService/"
CHAT = BindingKey(f"{DATA_PLANE}CreateChatCompletion", "POST", "/v1/chat/completions")


def test_every_codec_names_an_annotated_binding():
    assert set(CODECS) <= set(BINDINGS), sorted(map(str, set(CODECS) - set(BINDINGS)))
    for key, codec in CODECS.items():
        assert BINDINGS[key].codec is codec, key


def test_every_vendor_shaped_binding_has_a_codec():
    vendor_shaped = [b for b in TABLE.bindings if b.rpc_path.startswith(DATA_PLANE)]
    assert len(vendor_shaped) >= 25
    missing = [str(b.key) for b in vendor_shaped if b.codec is None]
    assert not missing, missing
    # Every chat dialect is a binding of the one streaming RPC; those that stream have stream encoders.
    streaming = {b.template: b.codec for b in vendor_shaped if b.rpc_path == CHAT.rpc and b.codec.wants_stream}
    assert set(streaming) == {"/v1/chat/completions", "/v1/messages", "/v1/responses",
                              "/v1beta/models/{chat.model}:streamGenerateContent"}
    assert all(codec.encode_events and codec.stream_end and codec.encode_stream_error for codec in streaming.values())


def test_a_codec_for_a_renamed_binding_stops_start_up():
    renamed = {**CODECS, CHAT._replace(template="/v1/chat/completion"): CODECS[CHAT]}
    with pytest.raises(RouteTableError, match=r"POST /v1/chat/completion \(CreateChatCompletion\)"):
        RouteTable(service_descriptors(), renamed, SERVICE_SURFACES)
    wrong_rpc = {**CODECS, CHAT._replace(rpc=f"{DATA_PLANE}CreateEmbeddings"): CODECS[CHAT]}
    with pytest.raises(RouteTableError, match="CreateEmbeddings"):
        RouteTable(service_descriptors(), wrong_rpc, SERVICE_SURFACES)


def test_surfaces_are_declared_once_and_checked():
    surfaces = {b.key: b.surface for b in TABLE.bindings}
    assert surfaces[CHAT] == DEFAULT
    assert surfaces[CHAT._replace(template="/v1/messages")] == ANTHROPIC
    assert surfaces[CHAT._replace(template="/v1beta/models/{chat.model}:generateContent")] == GEMINI
    assert {b.surface for b in TABLE.bindings if "GenerationService" in b.rpc_path} == {TEMPLATED}
    # A binding under Anthropic's API answering in another shape, or an unknown surface, stops start-up.
    count_tokens = BindingKey(f"{DATA_PLANE}CountTokens", "POST", "/v1/messages/count_tokens")
    for surface, words in ((DEFAULT, "where the default surface.s POST /v1/messages/count_tokens"), ("openai", "names the surface 'openai'")):
        table = {**CODECS, count_tokens: dataclasses.replace(CODECS[count_tokens], surface=surface)}
        with pytest.raises(RouteTableError, match=words):
            RouteTable(service_descriptors(), table, SERVICE_SURFACES)


class _ToyStream:
    def encode(self, chunk) -> bytes:
        return b"toy " + chunk.id.encode()

    def close(self) -> bytes:
        return b"end"

    def error(self, body: dict) -> bytes:
        return b"error"


TOY = ChatDialect(
    decode=lambda body, params, query: chat_pb2.ChatRequest(model=body["model"], stream=bool(body.get("stream"))),
    encode=lambda completion, request: {"toy": completion.id},
    stream=lambda request, query: _ToyStream(),
    name="toy",
)


def test_a_new_chat_dialect_is_one_line_in_the_table():
    # Any additional_binding of CreateChatCompletion can take a dialect: here one that exists.
    key = CHAT._replace(template="/v1/responses/compact")
    table = RouteTable(service_descriptors(), {**CODECS, key: chat_codec(TOY, ANTHROPIC)}, SERVICE_SURFACES)
    binding = next(b for b in table.bindings if b.key == key)
    assert binding.surface == ANTHROPIC
    request, stream = binding.codec.decode({"model": "m", "stream": True}, {}, [])
    assert request.chat.dialect == "toy" and request.chat.model == "m" and binding.codec.wants_stream(request)
    message = routing_pb2.CreateChatCompletionResponse(chunks=[chat_pb2.ChatCompletionChunk(id="a")])
    assert binding.codec.encode_events(message, stream) == b"toy a" and binding.codec.stream_end(stream) == b"end"
    request, state = binding.codec.decode({"model": "m"}, {}, [])
    answer = routing_pb2.CreateChatCompletionResponse(completion=chat_pb2.ChatCompletion(id="c"))
    assert binding.codec.encode(answer, state) == {"toy": "c"}
    # Its surface covers the paths below it, and only those.
    assert table.surface_of("/v1/responses/compact/x") == ANTHROPIC
    assert table.surface_of("/v1/responses/x") == table.surface_of("/v1/x") == DEFAULT
    assert table.surface_of("/v1/messages/x") == ANTHROPIC


def _surface_by_prefix(path: str) -> str:
    """The rule before the surface was a property of the binding: the shapes clients saw."""
    if path.startswith("/api/v1/"):
        return "templated"
    if path.startswith("/v1beta/"):
        return "gemini"
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    return "default"


def _paths() -> list[str]:
    paths = ["", "/", "*", "//", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v2/generate", "/api/v1/nope/deeper",
             "/v1beta", "/v1beta/", "/v1beta/files", "/v1beta//models", "/v1betax/models", "/v1/messages", "/v1/messages/",
             "/v1/messagesX", "/v1/messages/batches/x", "/v1/message", "/V1/messages", "/v1", "/v1/", "/healthz/x",
             "/v1/messages:count", "/api/v1:x", "/v1beta:x/models", "/v1/messages/%0d%0a", "/v1beta/%0d%0a",
             "/api/v1/%00", "/v1beta/models/%00:generateContent", "/v1beta%2Fmodels", "/api%2Fv1/x", "/\xff/v1beta"]
    for binding in TABLE.bindings:
        filled = fuzz.fill(binding.template, {v: "x" for v in _variables(binding.template)})
        paths += [filled, filled + "/more", filled + "/", filled.rsplit("/", 1)[0], filled + ":verb"]
    return paths


def _variables(template: str) -> list[str]:
    return list(parse_template(template).variables)


def test_every_path_keeps_the_surface_it_had():
    for path in _paths():
        assert TABLE.surface_of(path) == _surface_by_prefix(path), path


@pytest.mark.parametrize("path, surface", [
    ("/api/v1/nope", TEMPLATED), ("/api/v2/generate", DEFAULT), ("/api/v1", DEFAULT), ("/v1beta/files", GEMINI),
    ("/v1beta", DEFAULT), ("/v1/messages/batches", ANTHROPIC), ("/v1/messagesX", DEFAULT), ("/v1/nope", DEFAULT),
])
def test_unknown_paths_answer_in_the_shape_of_the_api_they_lie_in(gateway, admin_headers, path, surface):
    r = requests.get(f"{gateway.url}{path}", headers=admin_headers, timeout=10)
    assert r.status_code == 404 and r.headers["x-request-id"].startswith("req_")
    assert _shape(r.json()) == surface, r.text


def test_refusals_before_routing_answer_in_the_shape_of_the_path(gateway):
    port = int(gateway.url.rsplit(":", 1)[1])
    for path, surface in (("/v1beta/models/x:generateContent", GEMINI), ("/v1/messages", ANTHROPIC),
                          ("/api/v1/generate", TEMPLATED), ("/v1/chat/completions", DEFAULT)):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-Big: " + b"a" * (128 << 10) + b"\r\n\r\n"
        status, _, body = fuzz.raw_request("127.0.0.1", port, head)
        assert status == 431 and _shape(orjson.loads(body)) == surface, (path, body)


def test_a_method_a_binding_does_not_allow_answers_in_its_surface(gateway, admin_headers):
    r = requests.get(f"{gateway.url}/v1beta/models/x:generateContent", headers=admin_headers, timeout=10)
    assert r.status_code == 405 and _shape(r.json()) == GEMINI
    r = requests.delete(f"{gateway.url}/v1/messages/count_tokens", headers=admin_headers, timeout=10)
    assert r.status_code == 405 and _shape(r.json()) == ANTHROPIC


def _shape(body: dict) -> str:
    if body.get("type") == "error":
        return ANTHROPIC
    if body.get("success") is False:
        return TEMPLATED
    if "details" in body.get("error", {}):
        return GEMINI
    assert {"code", "message", "status", "requestId", "type", "param"} <= set(body["error"]), body
    return DEFAULT
