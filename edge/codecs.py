"""Which vendor dialect each vendor-shaped binding speaks, and in which surface it answers errors.

Control-plane bindings use generic HttpRule transcoding (edge/transcode.py). Data-plane bindings
whose JSON is a vendor's (OpenAI, Anthropic, Gemini, Responses, media) get a codec: vendor JSON ->
canonical request message, canonical response -> vendor JSON, and for server-streaming RPCs, each
streamed message -> bytes in the vendor's event format. CODECS is keyed by binding (the RPC, and
the verb and path template of one of its HttpRules, primary or additional), because one RPC serves
several dialects; edge/routes.py ties every key to an annotated binding at start-up and refuses to
start when one names a binding that no RPC declares. Each codec declares its binding's surface.

A chat dialect is a ChatDialect (what its module provides: decode, encode, a stream encoder) plus
one line in CODECS binding it to an additional_binding of RoutingService.CreateChatCompletion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from edge.dialects import anthropic, gemini, openai, openai_media, openai_responses
from edge.errors import ANTHROPIC, DEFAULT, GEMINI, TEMPLATED
from edge.multipart import parse_form
from edge.routes import BindingKey, RouteTable
from edge.transcode import build_request
from services.billing.ledger import usd, usd_text
from services.policy import service_descriptors
from switchyard.routing.v1 import chat_pb2, routing_pb2

# decode(body, path_params, query) -> (request message, per-request context for the encoders)
Decode = Callable[[Any, dict[str, str], list[tuple[str, str]]], tuple[Message, Any]]
Query = list[tuple[str, str]]


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
    # Whose error shape the binding answers in (edge/errors.py): the one its vendor's SDK parses.
    surface: str = DEFAULT


def _with_cost(payload: dict, usage) -> dict:
    """OpenRouter-style `usage.cost` in USD, exact digits (a JSON number)."""
    if isinstance(payload.get("usage"), dict):
        payload["usage"]["cost"] = usd(usage.cost_nano_usd)
    return payload


def _cost_header(usage) -> dict[str, str]:
    return {"x-switchyard-cost-usd": usd_text(usage.cost_nano_usd)}


def _count_method_header(response) -> dict[str, str]:
    # How the count was made, on every surface: "exact", "tokenizer" or "estimate".
    return {"x-switchyard-token-count-method": response.method}


# ---------------------------------------------------------------------------------------------------
# Chat: every dialect is a binding of the one server-streaming CreateChatCompletion.


class StreamEncoder(Protocol):
    """One stream's encoder: the bytes of each canonical chunk in the vendor's event format, of the
    stream's end, and of an error after the stream started (which ends it)."""

    def encode(self, chunk: chat_pb2.ChatCompletionChunk) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, body: dict) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ChatDialect:
    """What a chat dialect's module provides; chat_codec() makes a binding's codec of it.

    decode(body, path_params, query) -> the canonical ChatRequest, with `stream` set when the client
    asked for a stream (DialectError for bad input); encode(completion, request) -> the vendor's
    JSON of a finished answer; stream(request, query) -> a StreamEncoder for one stream (None: the
    binding never streams). `name` becomes the request's `dialect`, so an adapter that speaks the
    vendor's own API can pass its unmodelled fields on ("": OpenAI's, which every adapter reads).
    """

    decode: Callable[[Any, dict[str, str], Query], chat_pb2.ChatRequest]
    encode: Callable[[chat_pb2.ChatCompletion, chat_pb2.ChatRequest], Any]
    stream: Callable[[chat_pb2.ChatRequest, Query], StreamEncoder] | None = None
    name: str = ""
    # The stream's media type is the encoder's `media_type` (chosen per request), not SSE.
    media_type_per_stream: bool = False


def _encode_with_state(message: routing_pb2.CreateChatCompletionResponse, encoder: StreamEncoder) -> bytes:
    encode = encoder.encode
    return b"".join([encode(chunk) for chunk in message.chunks])


def _sse(_) -> str:
    return "text/event-stream"


def chat_codec(dialect: ChatDialect, surface: str = DEFAULT) -> Codec:
    """The codec of a CreateChatCompletion binding that speaks `dialect`, answering errors in `surface`."""
    make_stream = dialect.stream

    def decode(body, params, query):
        chat = dialect.decode(body, params, query)
        if dialect.name:
            chat.dialect = dialect.name
        # The encoders' per-request state: a stream encoder when the client asked for a stream,
        # else the canonical request itself.
        state = make_stream(chat, query) if chat.stream and make_stream is not None else chat
        return routing_pb2.CreateChatCompletionRequest(chat=chat), state

    streams = make_stream is not None
    return Codec(
        decode=decode,
        encode=lambda m, chat: dialect.encode(m.completion, chat),
        headers=lambda m: _cost_header(m.completion.usage),
        wants_stream=(lambda request: request.chat.stream) if streams else None,
        encode_events=_encode_with_state if streams else None,
        stream_end=(lambda encoder: encoder.close()) if streams else None,
        encode_stream_error=(lambda body, encoder: encoder.error(body)) if streams else None,
        stream_media_type=(lambda encoder: encoder.media_type) if dialect.media_type_per_stream else _sse,
        surface=surface,
    )


class _OpenAIChatStream:
    """OpenAI's chat.completion.chunk events, with the usage's cost on the last one."""

    __slots__ = ("_include_usage",)

    def __init__(self, request: chat_pb2.ChatRequest, query: Query) -> None:
        self._include_usage = request.include_usage

    def encode(self, chunk: chat_pb2.ChatCompletionChunk) -> bytes:
        payload = openai.encode_chunk(chunk, include_usage=self._include_usage)
        if payload is None:
            return b""
        if chunk.HasField("usage"):
            _with_cost(payload, chunk.usage)
        return openai.sse_event(payload)

    def close(self) -> bytes:
        return openai.SSE_DONE

    def error(self, body: dict) -> bytes:
        return openai.sse_event(body)


class _AnthropicStream(anthropic.MessagesStreamEncoder):
    __slots__ = ()

    def __init__(self, request: chat_pb2.ChatRequest, query: Query) -> None:
        super().__init__(request.model)

    def error(self, body: dict) -> bytes:
        return anthropic.error_event(body)


class _GeminiStream:
    """Gemini streams as SSE with alt=sse (what the SDK asks for), else as one streamed JSON array."""

    __slots__ = ("media_type", "_encoder")

    def __init__(self, request: chat_pb2.ChatRequest, query: Query) -> None:
        sse = any(name == "alt" and value == "sse" for name, value in query)
        self.media_type = "text/event-stream" if sse else "application/json"
        self._encoder = gemini.GenerateStreamEncoder(request.model, sse)

    def encode(self, chunk) -> bytes:
        return self._encoder.encode(chunk)

    def close(self) -> bytes:
        return self._encoder.close()

    def error(self, body: dict) -> bytes:
        # Framed for SSE or for the JSON array, and it ends the stream (close() then adds nothing).
        return self._encoder.error(body)


def _gemini_stream_request(body, params, query) -> chat_pb2.ChatRequest:
    chat = gemini.decode_generate_request(body, params["chat.model"])
    chat.stream = True  # Gemini chooses streaming by the URL's verb
    return chat


# Responses parameters that mean the same in Chat Completions pass on as they are; the two with a
# different home move there; the rest (include, truncation, hosted tools, …) exist only in the
# Responses API and would make a Chat Completions upstream answer 400, so they stay here.
_SHARED_WITH_CHAT = frozenset({
    "metadata", "store", "parallel_tool_calls", "service_tier", "top_logprobs", "prompt_cache_key",
    "safety_identifier", "seed", "logit_bias",
})


def _responses_request(body) -> chat_pb2.ChatRequest:
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
    return chat


def _compact_request(body, params, query) -> chat_pb2.ChatRequest:
    chat = _responses_request(body)
    chat.stream = False  # compaction answers at once
    return chat


OPENAI_CHAT = ChatDialect(
    decode=lambda body, params, query: openai.decode_chat_request(body),
    encode=lambda completion, _: _with_cost(openai.encode_chat_completion(completion), completion.usage),
    stream=_OpenAIChatStream,
)
ANTHROPIC_MESSAGES = ChatDialect(
    decode=lambda body, params, query: anthropic.decode_messages_request(body),
    encode=lambda completion, _: anthropic.encode_message(completion),
    stream=_AnthropicStream,
    name="anthropic",
)
GEMINI_GENERATE = ChatDialect(
    decode=lambda body, params, query: gemini.decode_generate_request(body, params["chat.model"]),
    encode=lambda completion, _: gemini.encode_generate_response(completion),
    name="gemini",
)
GEMINI_STREAM_GENERATE = ChatDialect(
    decode=_gemini_stream_request,
    encode=lambda completion, _: gemini.encode_generate_response(completion),
    stream=_GeminiStream,
    name="gemini",
    media_type_per_stream=True,
)
OPENAI_RESPONSES = ChatDialect(
    decode=lambda body, params, query: _responses_request(body),
    encode=openai_responses.encode_response,
    stream=lambda request, query: openai_responses.ResponsesStreamEncoder(request),
)
OPENAI_RESPONSES_COMPACT = ChatDialect(
    decode=_compact_request,
    encode=lambda completion, _: openai_responses.encode_output_text(completion),
)


# ---------------------------------------------------------------------------------------------------
# The other vendor-shaped bindings.


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


def _routing(rpc: str, verb: str, template: str) -> BindingKey:
    return BindingKey(f"/switchyard.routing.v1.RoutingService/{rpc}", verb, template)


def _chat(template: str) -> BindingKey:
    return _routing("CreateChatCompletion", "POST", template)


CODECS: dict[BindingKey, Codec] = {
    # Chat dialects: one line each (the binding is an additional_binding of CreateChatCompletion).
    _chat("/v1/chat/completions"): chat_codec(OPENAI_CHAT),
    _chat("/v1/messages"): chat_codec(ANTHROPIC_MESSAGES, ANTHROPIC),
    _chat("/v1beta/models/{chat.model}:generateContent"): chat_codec(GEMINI_GENERATE, GEMINI),
    _chat("/v1beta/models/{chat.model}:streamGenerateContent"): chat_codec(GEMINI_STREAM_GENERATE, GEMINI),
    _chat("/v1/responses"): chat_codec(OPENAI_RESPONSES),
    _chat("/v1/responses/compact"): chat_codec(OPENAI_RESPONSES_COMPACT),
    _routing("ListModels", "GET", "/v1beta/models"): Codec(
        decode=lambda body, params, query: (routing_pb2.ListModelsRequest(), gemini.model_page(query)),
        encode=gemini.encode_model_list,
        surface=GEMINI,
    ),
    _routing("GetModel", "GET", "/v1beta/models/{model_id}"): Codec(
        decode=lambda body, params, query: (routing_pb2.GetModelRequest(model_id=params["model_id"].removeprefix("models/")), None),
        encode=lambda m, _: gemini.encode_model(m.model),
        surface=GEMINI,
    ),
    # Token counting: free, and answered in each vendor's own shape.
    _routing("CountTokens", "POST", "/v1/messages/count_tokens"): Codec(
        decode=lambda body, params, query: (
            routing_pb2.CountTokensRequest(chat=_named(anthropic.decode_count_tokens_request(body), "anthropic")), None),
        encode=lambda m, _: anthropic.encode_count_tokens(m),
        headers=_count_method_header,
        surface=ANTHROPIC,
    ),
    _routing("CountTokens", "POST", "/v1beta/models/{chat.model}:countTokens"): Codec(
        decode=lambda body, params, query: (
            routing_pb2.CountTokensRequest(chat=gemini.decode_count_tokens_request(body, params["chat.model"])), None),
        encode=lambda m, _: gemini.encode_count_tokens(m),
        headers=_count_method_header,
        surface=GEMINI,
    ),
    _routing("CreateEmbeddings", "POST", "/v1beta/models/{model}:embedContent"): Codec(
        decode=lambda body, params, query: (gemini.decode_embed_request(body, params["model"]), None),
        encode=lambda m, _: gemini.encode_embed_response(m),
        headers=lambda m: _cost_header(m.usage),
        surface=GEMINI,
    ),
    _routing("CreateEmbeddings", "POST", "/v1beta/models/{model}:batchEmbedContents"): Codec(
        decode=lambda body, params, query: (gemini.decode_batch_embed_request(body, params["model"]), None),
        encode=lambda m, _: gemini.encode_batch_embed_response(m),
        headers=lambda m: _cost_header(m.usage),
        surface=GEMINI,
    ),
    _routing("CreateEmbeddings", "POST", "/v1/embeddings"): Codec(
        decode=_decode_embeddings,
        encode=lambda m, fmt: _with_cost(openai.encode_embeddings(m, fmt), m.usage),
        headers=lambda m: _cost_header(m.usage),
    ),
    _routing("Rerank", "POST", "/v1/rerank"): Codec(
        decode=_decode_rerank,
        encode=lambda m, _: _with_cost(openai.encode_rerank(m), m.usage),
        headers=lambda m: _cost_header(m.usage),
    ),
    _routing("CreateImage", "POST", "/v1/images/generations"): Codec(
        decode=lambda body, params, query: (openai_media.decode_image_request(body), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
    ),
    _routing("CreateSpeech", "POST", "/v1/audio/speech"): Codec(
        decode=lambda body, params, query: (openai_media.decode_speech_request(body), None),
        # The answer is the audio itself, with its content type (a google.api.HttpBody).
        encode=lambda m, _: m.audio,
        headers=lambda m: _cost_header(m.usage),
    ),
    _routing("CreateImageEdit", "POST", "/v1/images/edits"): Codec(
        decode=lambda body, params, query: (openai_media.decode_image_edit_request(parse_form(body)), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    _routing("CreateImageVariation", "POST", "/v1/images/variations"): Codec(
        decode=lambda body, params, query: (openai_media.decode_image_variation_request(parse_form(body)), None),
        encode=lambda m, _: openai_media.encode_images(m),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    _routing("CreateTranscription", "POST", "/v1/audio/transcriptions"): Codec(
        decode=lambda body, params, query: openai_media.decode_transcription_request(parse_form(body), "transcribe"),
        encode=lambda m, response_format: _transcription(m, response_format),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    _routing("CreateTranscription", "POST", "/v1/audio/translations"): Codec(
        decode=lambda body, params, query: openai_media.decode_transcription_request(parse_form(body), "translate"),
        encode=lambda m, response_format: _transcription(m, response_format),
        headers=lambda m: _cost_header(m.usage),
        raw_body=True,
    ),
    _routing("ListModels", "GET", "/v1/models"): Codec(
        decode=_generic(routing_pb2.ListModelsRequest), encode=lambda m, _: openai.encode_model_list(m)),
    _routing("GetModel", "GET", "/v1/models/{model_id=**}"): Codec(
        decode=lambda body, params, query: (routing_pb2.GetModelRequest(model_id=params["model_id"]), None),
        encode=lambda m, _: openai.encode_model(m.model),
    ),
    _routing("ListProviders", "GET", "/v1/providers"): Codec(
        decode=_generic(routing_pb2.ListProvidersRequest), encode=lambda m, _: openai.encode_provider_list(m)),
    _routing("PutModel", "PUT", "/v1/admin/models/{model.id=**}"): Codec(
        decode=_decode_put_model, encode=lambda m, _: openai.encode_model(m.model)),
    _routing("DeleteModel", "DELETE", "/v1/admin/models/{model_id=**}"): Codec(
        decode=_decode_delete_model,
        encode=lambda m, model_id: {"id": model_id, "object": "model", "deleted": True},
    ),
}

# The surface of the bindings without a codec, by service (the rest answer in the default surface).
SERVICE_SURFACES: dict[str, str] = {"switchyard.generation.v1.GenerationService": TEMPLATED}


def _named(chat: chat_pb2.ChatRequest, dialect: str) -> chat_pb2.ChatRequest:
    chat.dialect = dialect
    return chat


def route_table(services: list[ServiceDescriptor] | None = None) -> RouteTable:
    """The contract's bindings with these codecs and surfaces; raises RouteTableError when they do not fit."""
    return RouteTable(service_descriptors() if services is None else services, CODECS, SERVICE_SURFACES)
