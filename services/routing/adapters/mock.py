"""The built-in `mock` provider: answers without any network, so a fresh gateway works with no provider key.

Everything is a function of the request: the same request always gets the same reply, vectors and
scores (only `created` follows the clock). Token counts use `estimate_tokens`: the prompt over all
message text joined by newlines, the completion over what was generated.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import time
from collections.abc import AsyncIterator

from services.routing.adapters.base import CountsTokensLocally, Target, Timeouts, UpstreamError, estimate_tokens
from services.routing.audio import estimated_seconds, wav_seconds
from services.routing.http_client import UpstreamSession
from switchyard.routing.v1 import chat_pb2, routing_pb2
from switchyard.type.v1 import usage_pb2

REPLY_PREFIX = "Mock reply to: "
DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 4096
MAX_CHOICES = 16
_SNIPPET_WORDS = 12
_SENTENCES = (
    "This answer comes from Switchyard's built-in mock provider, so no model was called.",
    "It is deterministic: the same request always gets the same reply.",
    "Use it to try the gateway's API, keys, rate limits and billing without a provider account.",
    "Streaming splits this text into word-sized chunks.",
    "Token counts are estimated at about four characters per token.",
    "Point a model at a real provider in the configuration when you are ready.",
)
_WORD = re.compile(r"\w+")
_STREAM_PIECE = re.compile(r"\S+\s*|\s+")


def _client_error(message: str) -> UpstreamError:
    return UpstreamError(message, retryable=False, client_error=True)


def _message_text(message: chat_pb2.ChatMessage) -> str:
    if message.HasField("text"):
        return message.text
    return " ".join(p.text for p in message.parts if p.WhichOneof("part") == "text")


def prompt_text(request: chat_pb2.ChatRequest) -> str:
    """All the message text the prompt-token estimate is taken over (tool-call arguments included)."""
    pieces = []
    for m in request.messages:
        pieces.append(_message_text(m))
        pieces.extend(c.function.arguments for c in m.tool_calls)
    return "\n".join(pieces)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _last_user_text(request: chat_pb2.ChatRequest) -> str:
    for m in reversed(request.messages):
        if m.role == "user":
            return _message_text(m)
    return _message_text(request.messages[-1]) if request.messages else ""


def reply_text(request: chat_pb2.ChatRequest) -> str:
    """The whole reply before any max_tokens cut."""
    words = _last_user_text(request).split()
    snippet = " ".join(words[:_SNIPPET_WORDS]) + (" …" if len(words) > _SNIPPET_WORDS else "") if words else "your message"
    start = _digest(prompt_text(request)) % len(_SENTENCES)
    sentences = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(3)]
    end = "" if snippet[-1] in ".!?…" else "."
    return f"{REPLY_PREFIX}{snippet}{end} {' '.join(sentences)}"


def _forced_tool(request: chat_pb2.ChatRequest) -> str | None:
    if not request.tools:
        return None
    choice = request.tool_choice.WhichOneof("choice")
    if choice == "function_name":
        return request.tool_choice.function_name
    if choice == "mode" and request.tool_choice.mode == "required":
        return request.tools[0].function.name
    return None


class _Answer:
    """What the mock generates for one request, shared by chat and stream_chat."""

    __slots__ = ("id", "created", "choices", "text", "tool", "finish_reason", "usage")

    def __init__(self, request: chat_pb2.ChatRequest) -> None:
        n = request.n if request.HasField("n") else 1
        if not 1 <= n <= MAX_CHOICES:
            raise _client_error(f"The mock provider answers n between 1 and {MAX_CHOICES}.")
        prompt = prompt_text(request)
        self.id = f"chatcmpl-mock-{_digest(prompt):016x}"
        self.created = int(time.time())
        self.choices = n
        self.tool = _forced_tool(request)
        if self.tool is not None:
            self.text = ""
            self.finish_reason = "tool_calls"
            completion = estimate_tokens(self.tool + "{}")
        else:
            text = reply_text(request)
            self.finish_reason = "stop"
            if request.HasField("max_tokens") and estimate_tokens(text) > request.max_tokens:
                # ~4 characters a token: this many characters estimate to exactly max_tokens.
                text = text[: max(request.max_tokens, 0) * 4]
                self.finish_reason = "length"
            self.text = text
            completion = estimate_tokens(text)
        prompt_tokens = estimate_tokens(prompt)
        completion *= n
        self.usage = usage_pb2.TokenUsage(
            input_tokens=prompt_tokens, output_tokens=completion, total_tokens=prompt_tokens + completion
        )

    def call_id(self, index: int) -> str:
        return f"call_mock_{self.id[-12:]}_{index}"


class MockAdapter(CountsTokensLocally):
    tokenizer = False  # its counts are documented as the estimate

    async def chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> chat_pb2.ChatCompletion:
        answer = _Answer(request)
        completion = chat_pb2.ChatCompletion(id=answer.id, created=answer.created, system_fingerprint="fp_mock")
        for index in range(answer.choices):
            choice = completion.choices.add(index=index, finish_reason=answer.finish_reason)
            choice.message.role = "assistant"
            if answer.tool is not None:
                call = choice.message.tool_calls.add(id=answer.call_id(index), type="function")
                call.function.name = answer.tool
                call.function.arguments = "{}"
            else:
                choice.message.text = answer.text
        completion.usage.CopyFrom(answer.usage)
        return completion

    async def stream_chat(
        self, session: UpstreamSession, target: Target, request: chat_pb2.ChatRequest, timeouts: Timeouts
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        answer = _Answer(request)

        def chunk() -> chat_pb2.ChatCompletionChunk:
            return chat_pb2.ChatCompletionChunk(id=answer.id, created=answer.created)

        pieces = _STREAM_PIECE.findall(answer.text)
        for index in range(answer.choices):
            first = chunk()
            first.choices.add(index=index).delta.role = "assistant"
            if answer.tool is not None:
                delta = first.choices[0].delta
                delta.tool_calls.add(index=0, id=answer.call_id(index), type="function", function_name=answer.tool)
                yield first
                args = chunk()
                args.choices.add(index=index).delta.tool_calls.add(index=0, function_arguments="{}")
                yield args
            else:
                first.choices[0].delta.content = ""
                yield first
                for piece in pieces:
                    c = chunk()
                    c.choices.add(index=index).delta.content = piece
                    yield c
            last = chunk()
            last.choices.add(index=index, finish_reason=answer.finish_reason)
            yield last
        final = chunk()
        final.usage.CopyFrom(answer.usage)
        yield final

    async def embed(
        self, session: UpstreamSession, target: Target, request: routing_pb2.CreateEmbeddingsRequest, timeouts: Timeouts
    ) -> routing_pb2.CreateEmbeddingsResponse:
        dimensions = request.dimensions if request.HasField("dimensions") else DEFAULT_DIMENSIONS
        if not 1 <= dimensions <= MAX_DIMENSIONS:
            raise _client_error(f"The mock provider makes embeddings of 1 to {MAX_DIMENSIONS} dimensions.")
        response = routing_pb2.CreateEmbeddingsResponse()
        for index, text in enumerate(request.input):
            response.data.add(index=index).embedding.extend(embedding(text, dimensions))
        tokens = sum(estimate_tokens(text) for text in request.input)
        response.usage.input_tokens = tokens
        response.usage.total_tokens = tokens
        return response

    async def rerank(
        self, session: UpstreamSession, target: Target, request: routing_pb2.RerankRequest, timeouts: Timeouts
    ) -> routing_pb2.RerankResponse:
        query = set(_WORD.findall(request.query.lower()))
        scored = []
        for index, document in enumerate(request.documents):
            words = set(_WORD.findall(document.lower()))
            scored.append((len(query & words) / len(query) if query else 0.0, index))
        scored.sort(key=lambda s: (-s[0], s[1]))
        if request.HasField("top_n") and request.top_n > 0:
            scored = scored[: request.top_n]
        response = routing_pb2.RerankResponse(id=f"rerank-mock-{_digest(request.query):016x}")
        for score, index in scored:
            result = response.results.add(index=index, relevance_score=score)
            if request.return_documents:
                result.document = request.documents[index]
        tokens = estimate_tokens(request.query) + sum(estimate_tokens(d) for d in request.documents)
        response.usage.input_tokens = tokens
        response.usage.total_tokens = tokens
        return response



    async def image(self, session, target, request: routing_pb2.CreateImageRequest, timeouts) -> routing_pb2.CreateImageResponse:
        return _mock_images(routing_pb2.CreateImageResponse(), request, f"{request.prompt}:".encode(), request.prompt)


    async def image_edit(self, session, target, request: routing_pb2.CreateImageEditRequest, timeouts) -> routing_pb2.CreateImageEditResponse:
        seed = request.prompt.encode() + b"".join(hashlib.sha256(image.data).digest() for image in request.images)
        return _mock_images(routing_pb2.CreateImageEditResponse(), request, seed, request.prompt)

    async def image_variation(
        self, session, target, request: routing_pb2.CreateImageVariationRequest, timeouts
    ) -> routing_pb2.CreateImageVariationResponse:
        return _mock_images(routing_pb2.CreateImageVariationResponse(), request, hashlib.sha256(request.image.data).digest(), "")

    async def transcription(
        self, session, target, request: routing_pb2.CreateTranscriptionRequest, timeouts
    ) -> routing_pb2.CreateTranscriptionResponse:
        audio = request.file.data
        measured = wav_seconds(audio)
        length = measured if measured is not None else estimated_seconds(audio)
        translate = request.task == "translate"
        what = "translation into English" if translate else "transcription"
        text = (f"Mock {what} of {request.file.filename or 'the audio'}: {length:.1f} seconds of audio, "
                f"fingerprint {hashlib.blake2b(audio, digest_size=4).hexdigest()}.")
        # Only a WAV's length is known here; for other formats the gateway estimates it.
        response = routing_pb2.CreateTranscriptionResponse(
            text=text, task=request.task or "transcribe", duration=measured or 0.0,
            language="english" if translate else request.language or "english",
        )
        response.segments.add(id=0, seek=0, start=0.0, end=length, text=text, temperature=request.temperature,
                              compression_ratio=1.0)
        if "word" in request.timestamp_granularities:
            words = text.split()
            step = length / len(words)
            for i, word in enumerate(words):
                response.words.add(word=word, start=i * step, end=(i + 1) * step)
        if request.response_format in ("srt", "vtt"):
            response.text = subtitles(request.response_format, length, text)
        return response

    async def speech(self, session, target, request: routing_pb2.CreateSpeechRequest, timeouts) -> routing_pb2.CreateSpeechResponse:
        # About 15 characters a second of speech.
        response = routing_pb2.CreateSpeechResponse()
        response.audio.content_type = "audio/wav"
        response.audio.data = silent_wav(max(0.1, len(request.input) / 15))
        return response
def _mock_images(response, request, seed: bytes, revised_prompt: str):
    import base64

    if request.HasField("n") and not 1 <= request.n <= 10:
        raise _client_error("n must be between 1 and 10.")
    response.created = int(time.time())
    for i in range(request.n if request.HasField("n") else 1):
        encoded = base64.b64encode(tiny_png(seed + str(i).encode())).decode()
        if request.response_format == "url":
            response.data.add(url="data:image/png;base64," + encoded, revised_prompt=revised_prompt)
        else:
            response.data.add(b64_json=encoded, revised_prompt=revised_prompt)
    return response


def subtitles(kind: str, seconds: float, text: str) -> str:
    """One cue spanning the whole recording, as SubRip ("srt") or WebVTT ("vtt")."""
    def stamp(value: float, separator: str) -> str:
        millis = round(value * 1000)
        return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}{separator}{millis % 1000:03d}"

    if kind == "srt":
        return f"1\n{stamp(0, ',')} --> {stamp(seconds, ',')}\n{text}\n\n"
    return f"WEBVTT\n\n{stamp(0, '.')} --> {stamp(seconds, '.')}\n{text}\n\n"


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text and the dimension count."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    vector = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [v / norm for v in vector]


def tiny_png(seed: bytes) -> bytes:
    """A valid 8x8 RGB PNG whose colour depends on `seed`, so mock images decode and differ."""
    import hashlib
    import struct as _struct
    import zlib

    r, g, b = hashlib.sha256(seed).digest()[:3]
    rows = b"".join(b"\x00" + bytes((r, g, b)) * 8 for _ in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return _struct.pack(">I", len(data)) + kind + data + _struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = _struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def silent_wav(seconds: float) -> bytes:
    """A valid 16 kHz mono 16-bit WAV of silence, as long as the text would take to say."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\x00\x00" * int(16_000 * seconds))
    return buffer.getvalue()
