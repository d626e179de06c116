"""Fake OpenAI images and audio routes (real HTTP, OpenAI's wire formats: JSON and multipart).

Knob: set_mode(family, "ok", seconds=N): transcriptions and translations report N as the recording's
length (verbose_json `duration`, json `usage.seconds`) instead of FAKE_AUDIO_SECONDS.
"""

from __future__ import annotations

import base64
import email.policy
import math
import time
from dataclasses import dataclass
from email.parser import BytesParser

from aiohttp import web

from tests.fake_upstream import MODE, json_response, not_anthropic, route

# The first bytes of an MP3 frame: enough for clients that sniff the format.
FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64


@route("POST", "/v1/images/generations", family="openai", when=not_anthropic)
async def openai_images(upstream, request, recorded, params):
    body = recorded.json or {}
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return json_response({"error": {"message": "prompt is required", "type": "invalid_request_error", "param": "prompt",
                                         "code": None}}, 400)
    n = int(body.get("n") or 1)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-upstream-image").decode()
    data = [{"b64_json": png, "revised_prompt": f"{body['prompt']} ({i})"} for i in range(n)]
    if body.get("response_format") == "url":
        data = [{"url": f"https://images.example/fake-{i}.png"} for i in range(n)]
    return json_response({"created": int(time.time()), "data": data})


@route("POST", "/v1/audio/speech", family="openai", when=not_anthropic)
async def openai_speech(upstream, request, recorded, params):
    body = recorded.json or {}
    if not body.get("input") or not body.get("voice"):
        return json_response({"error": {"message": "input and voice are required", "type": "invalid_request_error",
                                         "param": None, "code": None}}, 400)
    return web.Response(body=FAKE_MP3, content_type="audio/mpeg")


# -- multipart uploads ---------------------------------------------------------------------------

# What the fake reports as the length of any recording (verbose_json `duration`; json `usage.seconds`,
# which whisper rounds up), so tests can tell the upstream's figure from the gateway's own.
FAKE_AUDIO_SECONDS = 12.3


@dataclass(frozen=True)
class FormFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ReceivedForm:
    fields: dict[str, list[str]]
    files: dict[str, list[FormFile]]

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


def received_form(recorded) -> ReceivedForm:
    """A recorded multipart/form-data body, parsed with the stdlib (independently of the gateway's parser)."""
    content_type = recorded.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ValueError(f"not a multipart request: {content_type!r}")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + recorded.body
    )
    fields: dict[str, list[str]] = {}
    files: dict[str, list[FormFile]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True)
        if filename is None:
            fields.setdefault(name, []).append(data.decode())
        else:
            files.setdefault(name, []).append(FormFile(filename, part.get_content_type(), data))
    return ReceivedForm(fields, files)


def _invalid(message: str, param: str | None) -> web.Response:
    return json_response({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}, 400)


def _images_answer(form: ReceivedForm, label: str) -> web.Response:
    n = int(form.field("n") or 1)
    if form.field("response_format") == "url":
        data = [{"url": f"https://images.example/{label}-{i}.png"} for i in range(n)]
    else:
        png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-upstream-" + label.encode()).decode()
        data = [{"b64_json": png, "revised_prompt": f"{form.field('prompt') or ''} ({label} {i})"} for i in range(n)]
    return json_response({"created": int(time.time()), "data": data})


@route("POST", "/v1/images/edits", family="openai", when=not_anthropic)
async def openai_image_edits(upstream, request, recorded, params):
    form = received_form(recorded)
    if not (form.files.get("image") or form.files.get("image[]")):
        return _invalid("image is required", "image")
    if not form.field("prompt"):
        return _invalid("prompt is required", "prompt")
    return _images_answer(form, "edit")


@route("POST", "/v1/images/variations", family="openai", when=not_anthropic)
async def openai_image_variations(upstream, request, recorded, params):
    form = received_form(recorded)
    if not form.files.get("image"):
        return _invalid("image is required", "image")
    return _images_answer(form, "variation")


async def _transcription(request, recorded, task: str, model_required: bool) -> web.Response:
    form = received_form(recorded)
    files = form.files.get("file")
    if not files:
        return _invalid("file is required", "file")
    if model_required and not form.field("model"):
        return _invalid("model is required", "model")
    audio = files[0]
    verb = "translation" if task == "translate" else "transcript"
    text = f"fake {verb} of {audio.filename} ({len(audio.data)} bytes)"
    response_format = form.field("response_format") or "json"
    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if response_format in ("srt", "vtt"):
        head = "1\n00:00:00,000 --> 00:00:12,300\n" if response_format == "srt" else "WEBVTT\n\n00:00:00.000 --> 00:00:12.300\n"
        return web.Response(text=f"{head}{text}\n\n", content_type="text/plain")
    seconds = request[MODE].opts.get("seconds", FAKE_AUDIO_SECONDS)
    usage = {"type": "duration", "seconds": math.ceil(seconds) if seconds == FAKE_AUDIO_SECONDS else seconds}
    if response_format == "json":
        return json_response({"text": text, "usage": usage})
    answer = {
        "task": task, "language": "english" if task == "translate" else form.field("language") or "english",
        "duration": seconds, "text": text,
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": FAKE_AUDIO_SECONDS, "text": text, "tokens": [50364, 1012],
                      "temperature": 0.0, "avg_logprob": -0.25, "compression_ratio": 1.1, "no_speech_prob": 0.01}],
        "usage": usage,
    }
    if "word" in form.fields.get("timestamp_granularities[]", []):
        answer["words"] = [{"word": w, "start": float(i), "end": float(i) + 0.5} for i, w in enumerate(text.split())]
    return json_response(answer)


@route("POST", "/v1/audio/transcriptions", family="openai", when=not_anthropic)
async def openai_transcriptions(upstream, request, recorded, params):
    return await _transcription(request, recorded, "transcribe", model_required=True)


@route("POST", "/v1/audio/translations", family="openai", when=not_anthropic)
async def openai_translations(upstream, request, recorded, params):
    return await _transcription(request, recorded, "translate", model_required=True)


@route("POST", "/openai/deployments/{deployment}/audio/transcriptions", family="azure")
async def azure_transcriptions(upstream, request, recorded, params):
    # Azure names the model in the path (the deployment), not in the form.
    return await _transcription(request, recorded, "transcribe", model_required=False)
