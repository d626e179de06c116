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

from edge.dialects import anthropic, gemini, openai, openai_media, openai_responses
from edge.multipart import parse_form
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
    stream_end: Callable[[Any], bytes] | None = None
    # HTTP status and body shape for errors come from the surface; this is the SSE error event.
    encode_stream_error: Callable[[dict, Any], bytes] | None = None
    stream_media_type: Callable[[Any], str] = lambda _: "text/event-stream"
    # Extra response headers derived from a unary answer (e.g. its cost).
    headers: Callable[[Message], dict[str, str]] | None = None
    # decode gets the body as read (a RawBody: bytes and Content-Type) instead of parsed JSON:
    # for multipart uploads.
    raw_body: bool = False


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


def _count_method_header(response) -> dict[str, str]:
    # How the count was made, on every surface: "exact", "tokenizer" or "estimate".
    return {"x-switchyard-token-count-method": response.method}


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


def _in_dialect(chat, dialect: str):
    chat.dialect = dialect
    return chat


def _streaming(chat, make_encoder):
    """The request message, and the per-request state its encoders need: a stream encoder when
    the client asked for a stream, else the canonical request itself."""
    request = routing_pb2.CreateChatCompletionRequest(chat=chat)
    return request, (make_encoder(chat) if chat.stream and make_encoder is not None else chat)


def _encode_with_state(message: routing_pb2.CreateChatCompletionResponse, encoder) -> bytes:
    return b"".join(encoder.encode(chunk) for chunk in message.chunks)


def _decode_gemini_stream(body, params, query):
    chat = _in_dialect(gemini.decode_generate_request(body, params["chat.model"]), "gemini")
    chat.stream = True
    sse = any(name == "alt" and value == "sse" for name, value in query)
    return routing_pb2.CreateChatCompletionRequest(chat=chat), _GeminiStream(chat.model, sse)


class _GeminiStream:
    """Gemini streams as SSE with alt=sse (what the SDK asks for), else as one streamed JSON array."""

    def __init__(self, model: str, sse: bool) -> None:
        self.media_type = "text/event-stream" if sse else "application/json"
        self._encoder = gemini.GenerateStreamEncoder(model, sse)

    def encode(self, chunk) -> bytes:
        return self._encoder.encode(chunk)

    def close(self) -> bytes:
        return self._encoder.close()

    def error(self, body: dict) -> bytes:
        # Framed for SSE or for the JSON array, and it ends the stream (close() then adds nothing).
        return self._encoder.error(body)


# Responses parameters that mean the same in Chat Completions pass on as they are; the two with a
# different home move there; the rest (include, truncation, hosted tools, …) exist only in the
# Responses API and would make a Chat Completions upstream answer 400, so they stay here.
_SHARED_WITH_CHAT = frozenset({
    "metadata", "store", "parallel_tool_calls", "service_tier", "top_logprobs", "prompt_cache_key",
    "safety_identifier", "seed", "logit_bias",
})


def _decode_responses(body, compact: bool = False):
    import orjson

    chat = openai_responses.decode_responses_request(body)
    if chat.extra_json:
        extra = orjson.loads(chat.extra_json)
        kept = {k: v for k, v in extra.items() if k in _SHARED_WITH_CHAT}
        reasoning = extra.get("reasoning")
        if isinstance(reasoning, dict) and reasoning.get("effort"):
            kept["reasoning_effort"] = reasoning["effort"]
        text = extra.get("text")
        if isinstance(text, dict) and text.get("verbosity"):
            kept["verbosity"] = text["verbosity"]
        chat.extra_json = orjson.dumps(kept) if kept else b""
    if compact:
        chat.stream = False
        return routing_pb2.CreateChatCompletionRequest(chat=chat), chat
    return _streaming(chat, openai_responses.ResponsesStreamEncoder)


def _transcription(response: routing_pb2.CreateTranscriptionResponse, response_format: str):
    payload = openai_media.encode_transcription(response, response_format)
    return _with_cost(payload, response.usage) if isinstance(payload, dict) else payload


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
        stream_end=lambda _: openai.SSE_DONE,
        encode_stream_error=lambda body, _: openai.sse_event(body),
    ),
    "/v1/messages": Codec(
        decode=lambda body, params, query: _streaming(_in_dialect(anthropic.decode_messages_request(body), "anthropic"),
                                                      lambda chat: anthropic.MessagesStreamEncoder(chat.model)),
        encode=lambda m, _: anthropic.encode_message(m.completion),
        headers=lambda m: _cost_header(m.completion.usage),
        wants_stream=lambda request: request.chat.stream,
        encode_events=_encode_with_state,
        stream_end=lambda encoder: encoder.close(),
        encode_stream_error=lambda body, _: anthropic.error_event(body),
    ),
    "/v1beta/models/{chat.model}:generateContent": Codec(
        decode=lambda body, params, query: _streaming(
            _in_dialect(gemini.decode_generate_request(body, params["chat.model"]), "gemini"), None),
        encode=lambda m, _: gemini.encode_generate_response(m.completion),
        headers=lambda m: _cost_header(m.completion.usage),
    ),
    "/v1beta/models/{chat.model}:streamGenerateContent": Codec(
        decode=_decode_gemini_stream,
        encode=lambda m, _: gemini.encode_generate_response(m.completion),
        wants_stream=lambda request: True,
        encode_events=_encode_with_state,
        stream_end=lambda encoder: encoder.close(),
        encode_stream_error=lambda body, stream: stream.error(body),
        stream_media_type=lambda stream: stream.media_type,
    ),
    "/v1/responses": Codec(
        decode=lambda body, params, query: _decode_responses(body),
        encode=lambda m, chat: openai_responses.encode_response(m.completion, chat),
        headers=lambda m: _cost_header(m.completion.usage),
        wants_stream=lambda request: request.chat.stream,
        encode_events=_encode_with_state,
        stream_end=lambda encoder: encoder.close(),
        encode_stream_error=lambda body, encoder: encoder.error(body),
    ),
    "/v1/responses/compact": Codec(
        decode=lambda body, params, query: _decode_responses(body, compact=True),
        encode=lambda m, _: openai_responses.encode_output_text(m.completion),
        headers=lambda m: _cost_header(m.completion.usage),
    ),
    "/v1beta/models": Codec(decode=_generic(routing_pb2.ListModelsRequest), encode=lambda m, _: gemini.encode_model_list(m)),
    "/v1beta/models/{model_id}": Codec(
        decode=lambda body, params, query: (routing_pb2.GetModelRequest(model_id=params["model_id"].removeprefix("models/")), None),
        encode=lambda m, _: gemini.encode_model(m.model),
    ),
    # Token counting: free, and answered in each vendor's own shape.
    "/v1/messages/count_tokens": Codec(
        decode=lambda body, params, query: (
            routing_pb2.CountTokensRequest(chat=_in_dialect(anthropic.decode_count_tokens_request(body), "anthropic")), None),
        encode=lambda m, _: anthropic.encode_count_tokens(m),
        headers=_count_method_header,
    ),
    "/v1beta/models/{chat.model}:countTokens": Codec(
        decode=lambda body, params, query: (
            routing_pb2.CountTokensRequest(chat=gemini.decode_count_tokens_request(body, params["chat.model"])), None),
        encode=lambda m, _: gemini.encode_count_tokens(m),
        headers=_count_method_header,
    ),
    "/v1beta/models/{model}:embedContent": Codec(
        decode=lambda body, params, query: (gemini.decode_embed_request(body, params["model"]), None),
        encode=lambda m, _: gemini.encode_embed_response(m),
        headers=lambda m: _cost_header(m.usage),
    ),
    "/v1beta/models/{model}:batchEmbedContents": Codec(
        decode=lambda body, params, query: (gemini.decode_batch_embed_request(body, params["model"]), None),
        encode=lambda m, _: gemini.encode_batch_embed_response(m),
        headers=lambda m: _cost_header(m.usage),
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
    "/v1/images/generations": Codec(
        decode=lambda body, params, query: (openai_media.decode_image_request(body), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
    ),
    "/v1/audio/speech": Codec(
        decode=lambda body, params, query: (openai_media.decode_speech_request(body), None),
        # The answer is the audio itself, with its content type (a google.api.HttpBody).
        encode=lambda m, _: m.audio,
        headers=lambda m: _cost_header(m.usage),
    ),
    "/v1/images/edits": Codec(
        decode=lambda body, params, query: (openai_media.decode_image_edit_request(parse_form(body)), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    "/v1/images/variations": Codec(
        decode=lambda body, params, query: (openai_media.decode_image_variation_request(parse_form(body)), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    "/v1/audio/transcriptions": Codec(
        decode=lambda body, params, query: openai_media.decode_transcription_request(parse_form(body), "transcribe"),
        encode=lambda m, response_format: _transcription(m, response_format),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    "/v1/audio/translations": Codec(
        decode=lambda body, params, query: openai_media.decode_transcription_request(parse_form(body), "translate"),
        encode=lambda m, response_format: _transcription(m, response_format),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
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
