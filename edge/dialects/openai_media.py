"""The OpenAI images and audio endpoints: vendor JSON or multipart forms <-> canonical messages."""

from __future__ import annotations

import re

import orjson
from google.api import httpbody_pb2

from edge.dialects.openai import WORDING, read
from edge.dialects.vendor_json import DialectError
from edge.multipart import Form, Upload
from switchyard.routing.v1 import routing_pb2

_IMAGE_FIELDS = frozenset({"model", "prompt", "n", "size", "response_format", "user"})
_SPEECH_FIELDS = frozenset({"model", "input", "voice", "response_format", "speed"})
_AUDIO_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})


def _extra(body: dict, known: frozenset[str]) -> bytes:
    # Unmodelled parameters (quality, style, background, instructions, …) travel on unchanged.
    extra = {k: v for k, v in body.items() if k not in known}
    return orjson.dumps(extra) if extra else b""


def decode_image_request(body: object) -> routing_pb2.CreateImageRequest:
    body = read.object(body, "body")
    request = routing_pb2.CreateImageRequest(
        model=read.required_str(body, "model", "model"),
        prompt=read.required_str(body, "prompt", "prompt"),
        extra_json=_extra(body, _IMAGE_FIELDS),
    )
    if body.get("n") is not None:
        request.n = read.integer(body["n"], "n", 1, 10)
    if body.get("size") is not None:
        request.size = read.optional_str(body["size"], "size")
    if body.get("response_format") is not None:
        request.response_format = read.optional_str(body["response_format"], "response_format")
        if request.response_format not in ("url", "b64_json"):
            raise DialectError("response_format must be 'url' or 'b64_json'.", "response_format")
    if body.get("user") is not None:
        request.user = read.optional_str(body["user"], "user")
    return request


def encode_images(response: routing_pb2.CreateImageResponse | routing_pb2.CreateImageEditResponse
                  | routing_pb2.CreateImageVariationResponse) -> dict:
    data = []
    for image in response.data:
        item: dict = {"b64_json": image.b64_json} if image.b64_json else {"url": image.url}
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    return {"created": response.created, "data": data}


def decode_speech_request(body: object) -> routing_pb2.CreateSpeechRequest:
    body = read.object(body, "body")
    request = routing_pb2.CreateSpeechRequest(
        model=read.required_str(body, "model", "model"),
        input=read.required_str(body, "input", "input"),
        voice=read.required_str(body, "voice", "voice"),
        extra_json=_extra(body, _SPEECH_FIELDS),
    )
    if body.get("response_format") is not None:
        request.response_format = read.optional_str(body["response_format"], "response_format")
        if request.response_format not in _AUDIO_FORMATS:
            raise DialectError(f"response_format must be one of {', '.join(sorted(_AUDIO_FORMATS))}.", "response_format")
    if body.get("speed") is not None:
        request.speed = read.number(body["speed"], "speed", 0.25, 4.0)
    return request



# -- multipart uploads: images/edits, images/variations, audio/transcriptions and translations -------

_IMAGE_EDIT_FIELDS = frozenset({"model", "prompt", "n", "size", "response_format", "user", "stream"})
_IMAGE_VARIATION_FIELDS = frozenset({"model", "n", "size", "response_format", "user"})
_TRANSCRIPTION_FIELDS = frozenset({"model", "prompt", "response_format", "temperature", "language",
                                   "timestamp_granularities[]", "timestamp_granularities", "stream"})
_TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_GRANULARITIES = frozenset({"word", "segment"})
_INTEGER = re.compile(r"[+-]?\d{1,12}")


def _field(form: Form, name: str, required: bool = False) -> str | None:
    values = form.fields.get(name)
    if not values:
        if name in form.files:
            raise read.invalid(name, "expected a text field, but got a file.")
        if required:
            raise read.missing(name)
        return None
    if len(values) > 1:
        raise read.invalid(name, f"given {len(values)} times, expected once.")
    if required and not values[0]:
        raise read.invalid(name, WORDING.empty_string)
    return values[0]


def _form_int(value: str, param: str, minimum: int, maximum: int) -> int:
    # Form fields are text: "2" is the integer 2, as OpenAI reads it.
    if not _INTEGER.fullmatch(value.strip()):
        raise read.wrong_type(param, WORDING.integer, value)
    return read.integer(int(value), param, minimum, maximum)


def _form_number(value: str, param: str, minimum: float, maximum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise read.wrong_type(param, WORDING.number, value) from None
    return read.number(number, param, minimum, maximum)


def _file(upload: Upload) -> routing_pb2.File:
    return routing_pb2.File(filename=upload.filename, content_type=upload.content_type, data=upload.data)


def _one_file(form: Form, name: str, required: bool = True) -> routing_pb2.File | None:
    uploads = form.files.get(name)
    if not uploads:
        if name in form.fields:
            raise read.invalid(name, "expected a file, but got a text field.")
        if required:
            raise DialectError(f"Missing required parameter: '{name}' (a file).", name)
        return None
    if len(uploads) > 1:
        raise read.invalid(name, f"expected one file, but got {len(uploads)}.")
    return _file(uploads[0])


def _form_extra(form: Form, known: frozenset[str]) -> bytes:
    # Bracketed names (`include[]`) are lists on the wire; any other field is sent once.
    fields = {name: values if name.endswith("[]") or len(values) > 1 else values[0] for name, values in form.fields.items()}
    return _extra(fields, known)


def _no_stream(form: Form) -> None:
    stream = _field(form, "stream")
    if stream is not None and stream.strip().lower() not in ("false", "0", ""):
        raise DialectError("Streaming is not supported on this endpoint; leave 'stream' unset.", "stream")


def _image_options(request, form: Form) -> None:
    if (n := _field(form, "n")) is not None:
        request.n = _form_int(n, "n", 1, 10)
    if (size := _field(form, "size")) is not None:
        request.size = size
    if (response_format := _field(form, "response_format")) is not None:
        if response_format not in ("url", "b64_json"):
            raise DialectError("response_format must be 'url' or 'b64_json'.", "response_format")
        request.response_format = response_format
    if (user := _field(form, "user")) is not None:
        request.user = user


def decode_image_edit_request(form: Form) -> routing_pb2.CreateImageEditRequest:
    _no_stream(form)
    # The SDK sends one image as `image` and several as `image[]`.
    uploads = form.files.get("image", []) + form.files.get("image[]", [])
    if not uploads:
        raise DialectError("Missing required parameter: 'image' (one or more files).", "image")
    request = routing_pb2.CreateImageEditRequest(
        model=_field(form, "model", required=True),
        images=[_file(u) for u in uploads],
        prompt=_field(form, "prompt", required=True),
        extra_json=_form_extra(form, _IMAGE_EDIT_FIELDS),
    )
    if (mask := _one_file(form, "mask", required=False)) is not None:
        request.mask.CopyFrom(mask)
    for name in form.files.keys() - {"image", "image[]", "mask"}:
        request.extra_files[name].CopyFrom(_one_file(form, name))
    _image_options(request, form)
    return request


def decode_image_variation_request(form: Form) -> routing_pb2.CreateImageVariationRequest:
    for name in form.files.keys() - {"image"}:
        raise DialectError(f"Unknown file field '{name}': only 'image' is taken.", name)
    request = routing_pb2.CreateImageVariationRequest(
        model=_field(form, "model", required=True),
        image=_one_file(form, "image"),
        extra_json=_form_extra(form, _IMAGE_VARIATION_FIELDS),
    )
    _image_options(request, form)
    return request


def decode_transcription_request(form: Form, task: str) -> tuple[routing_pb2.CreateTranscriptionRequest, str]:
    """The request and the response format the answer is rendered in."""
    _no_stream(form)
    for name in form.files.keys() - {"file"}:
        raise DialectError(f"Unknown file field '{name}': only 'file' is taken.", name)
    known = _TRANSCRIPTION_FIELDS if task == "transcribe" else _TRANSCRIPTION_FIELDS - {"language"}
    request = routing_pb2.CreateTranscriptionRequest(
        model=_field(form, "model", required=True),
        file=_one_file(form, "file"),
        task=task,
        extra_json=_form_extra(form, known),
    )
    if (prompt := _field(form, "prompt")) is not None:
        request.prompt = prompt
    response_format = _field(form, "response_format") or "json"
    if response_format not in _TRANSCRIPTION_FORMATS:
        raise DialectError(f"response_format must be one of {', '.join(_TRANSCRIPTION_FORMATS)}.", "response_format")
    request.response_format = response_format
    if (temperature := _field(form, "temperature")) is not None:
        request.temperature = _form_number(temperature, "temperature", 0.0, 1.0)
    if task == "transcribe" and (language := _field(form, "language")) is not None:
        request.language = language
    granularities = form.fields.get("timestamp_granularities[]", []) + form.fields.get("timestamp_granularities", [])
    for value in granularities:
        if value not in _GRANULARITIES:
            raise DialectError("timestamp_granularities must be 'word' and/or 'segment'.", "timestamp_granularities")
    if granularities and response_format != "verbose_json":
        raise DialectError("timestamp_granularities requires response_format 'verbose_json'.", "timestamp_granularities")
    request.timestamp_granularities.extend(dict.fromkeys(granularities))
    return request, response_format


def encode_transcription(response: routing_pb2.CreateTranscriptionResponse, response_format: str) -> dict | httpbody_pb2.HttpBody:
    if response_format in ("text", "srt", "vtt"):
        return httpbody_pb2.HttpBody(content_type="text/plain; charset=utf-8", data=response.text.encode())
    # OpenAI's whisper answers report the seconds billed the same way.
    usage = {"type": "duration", "seconds": response.usage.input_tokens}
    if response_format != "verbose_json":
        return {"text": response.text, "usage": usage}
    out: dict = {
        "task": response.task or "transcribe",
        "language": response.language,
        "duration": response.duration,
        "text": response.text,
        "segments": [
            {"id": s.id, "seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
             "temperature": s.temperature, "avg_logprob": s.avg_logprob, "compression_ratio": s.compression_ratio,
             "no_speech_prob": s.no_speech_prob}
            for s in response.segments
        ],
    }
    if response.words:
        out["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in response.words]
    out["usage"] = usage
    return out
