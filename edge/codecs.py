"""Which vendor dialect each vendor-shaped route speaks.

Control-plane routes use generic HttpRule transcoding (edge/transcode.py). Data-plane routes whose
JSON is a vendor's (OpenAI here; Anthropic and Gemini bind further templates to the same RPCs) get a
codec: vendor JSON -> canonical request message, canonical response -> vendor JSON, and for
server-streaming RPCs, each streamed message -> SSE bytes in the vendor's event format.
Keyed by route template, not by RPC, because one RPC serves several dialects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from google.protobuf.message import Message

from edge.dialects import openai
from edge.transcode import build_request
from switchyard.routing.v1 import routing_pb2

# decode(body, path_params, query) -> (request message, per-request context for the encoders)
Decode = Callable[[Any, dict[str, str], list[tuple[str, str]]], tuple[Message, Any]]


@dataclass(frozen=True, slots=True)
class Codec:
    decode: Decode
    # The JSON of a unary answer (for a streaming RPC: of its only message, when not streaming).
    encode: Callable[[Message, Any], Any]
    # Streaming RPCs: whether this request asked for a stream, and the SSE bytes of one message.
    wants_stream: Callable[[Message], bool] | None = None
    encode_events: Callable[[Message, Any], bytes] | None = None
    stream_end: bytes = b""
    # HTTP status and body shape for errors come from the surface; this is the SSE error event.
    encode_stream_error: Callable[[dict], bytes] | None = None
    # Extra response headers derived from a unary answer (e.g. its cost).
    headers: Callable[[Message], dict[str, str]] | None = None


def _usd_text(nano: int) -> str:
    text = format(Decimal(nano) / 1_000_000_000, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _with_cost(payload: dict, usage) -> dict:
    """OpenRouter-style `usage.cost` in USD, exact digits (a JSON number)."""
    if isinstance(payload.get("usage"), dict):
        payload["usage"]["cost"] = float(Decimal(usage.cost_nano_usd) / 1_000_000_000)
    return payload


def _cost_header(usage) -> dict[str, str]:
    return {"x-switchyard-cost-usd": _usd_text(usage.cost_nano_usd)}


def _decode_chat(body, params, query):
    request = routing_pb2.CreateChatCompletionRequest(chat=openai.decode_chat_request(body))
    return request, request.chat.include_usage


def _chat_events(message: routing_pb2.CreateChatCompletionResponse, include_usage: bool) -> bytes:
    out = []
    for chunk in message.chunks:
        payload = openai.encode_chunk(chunk, include_usage=include_usage)
        if payload is not None:
            if chunk.HasField("usage"):
                _with_cost(payload, chunk.usage)
            out.append(openai.sse_event(payload))
    return b"".join(out)


def _decode_embeddings(body, params, query):
    return openai.decode_embeddings_request(body)


def _decode_rerank(body, params, query):
    return openai.decode_rerank_request(body), None


def _generic(message_class):
    def decode(body, params, query):
        return build_request(message_class, path_params=params, query=query, body=body, body_field=""), None

    return decode


def _decode_put_model(body, params, query):
    if not isinstance(body, dict):
        raise openai.DialectError("The request body must be a JSON object describing the model.", None)
    model = openai.decode_model({**body, "id": params["model.id"]})
    return routing_pb2.PutModelRequest(model=model), None


def _decode_delete_model(body, params, query):
    return routing_pb2.DeleteModelRequest(model_id=params["model_id"]), params["model_id"]


OPENAI_CODECS: dict[str, Codec] = {
    "/v1/chat/completions": Codec(
        decode=_decode_chat,
        encode=lambda m, _: _with_cost(openai.encode_chat_completion(m.completion), m.completion.usage),
        headers=lambda m: _cost_header(m.completion.usage),
        wants_stream=lambda request: request.chat.stream,
        encode_events=_chat_events,
        stream_end=openai.SSE_DONE,
        encode_stream_error=openai.sse_event,
    ),
    "/v1/embeddings": Codec(
        decode=_decode_embeddings,
        encode=lambda m, fmt: _with_cost(openai.encode_embeddings(m, fmt), m.usage),
        headers=lambda m: _cost_header(m.usage),
    ),
    "/v1/rerank": Codec(
        decode=_decode_rerank,
        encode=lambda m, _: _with_cost(openai.encode_rerank(m), m.usage),
        headers=lambda m: _cost_header(m.usage),
    ),
    "/v1/models": Codec(decode=_generic(routing_pb2.ListModelsRequest), encode=lambda m, _: openai.encode_model_list(m)),
    "/v1/models/{model_id=**}": Codec(
        decode=lambda body, params, query: (routing_pb2.GetModelRequest(model_id=params["model_id"]), None),
        encode=lambda m, _: openai.encode_model(m.model),
    ),
    "/v1/providers": Codec(decode=_generic(routing_pb2.ListProvidersRequest), encode=lambda m, _: openai.encode_provider_list(m)),
    "/v1/admin/models/{model.id=**}": Codec(decode=_decode_put_model, encode=lambda m, _: openai.encode_model(m.model)),
    "/v1/admin/models/{model_id=**}": Codec(
        decode=_decode_delete_model,
        encode=lambda m, model_id: {"id": model_id, "object": "model", "deleted": True},
    ),
}
