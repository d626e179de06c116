"""The OpenAI images (generations) and speech endpoints: vendor JSON <-> canonical messages."""

from __future__ import annotations

import orjson

from edge.dialects.openai import DialectError, _int, _number, _object, _optional_str, _required_str
from switchyard.routing.v1 import routing_pb2

_IMAGE_FIELDS = frozenset({"model", "prompt", "n", "size", "response_format", "user"})
_SPEECH_FIELDS = frozenset({"model", "input", "voice", "response_format", "speed"})
_AUDIO_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})


def _extra(body: dict, known: frozenset[str]) -> bytes:
    # Unmodelled parameters (quality, style, background, instructions, …) travel on unchanged.
    extra = {k: v for k, v in body.items() if k not in known}
    return orjson.dumps(extra) if extra else b""


def decode_image_request(body: object) -> routing_pb2.CreateImageRequest:
    body = _object(body, "body")
    request = routing_pb2.CreateImageRequest(
        model=_required_str(body, "model", "model"),
        prompt=_required_str(body, "prompt", "prompt"),
        extra_json=_extra(body, _IMAGE_FIELDS),
    )
    if body.get("n") is not None:
        request.n = _int(body["n"], "n", 1, 10)
    if body.get("size") is not None:
        request.size = _optional_str(body["size"], "size")
    if body.get("response_format") is not None:
        request.response_format = _optional_str(body["response_format"], "response_format")
        if request.response_format not in ("url", "b64_json"):
            raise DialectError("response_format must be 'url' or 'b64_json'.", "response_format")
    if body.get("user") is not None:
        request.user = _optional_str(body["user"], "user")
    return request


def encode_images(response: routing_pb2.CreateImageResponse) -> dict:
    data = []
    for image in response.data:
        item: dict = {"b64_json": image.b64_json} if image.b64_json else {"url": image.url}
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    return {"created": response.created, "data": data}


def decode_speech_request(body: object) -> routing_pb2.CreateSpeechRequest:
    body = _object(body, "body")
    request = routing_pb2.CreateSpeechRequest(
        model=_required_str(body, "model", "model"),
        input=_required_str(body, "input", "input"),
        voice=_required_str(body, "voice", "voice"),
        extra_json=_extra(body, _SPEECH_FIELDS),
    )
    if body.get("response_format") is not None:
        request.response_format = _optional_str(body["response_format"], "response_format")
        if request.response_format not in _AUDIO_FORMATS:
            raise DialectError(f"response_format must be one of {', '.join(sorted(_AUDIO_FORMATS))}.", "response_format")
    if body.get("speed") is not None:
        request.speed = _number(body["speed"], "speed", 0.25, 4.0)
    return request

