"""Fake OpenAI images and speech routes (real HTTP, OpenAI's wire format)."""

from __future__ import annotations

import base64
import time

from aiohttp import web

from tests.fake_routes.openai_chat import _not_anthropic
from tests.fake_upstream import json_response, route

# The first bytes of an MP3 frame: enough for clients that sniff the format.
FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64


@route("POST", "/v1/images/generations", family="openai", when=_not_anthropic)
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


@route("POST", "/v1/audio/speech", family="openai", when=_not_anthropic)
async def openai_speech(upstream, request, recorded, params):
    body = recorded.json or {}
    if not body.get("input") or not body.get("voice"):
        return json_response({"error": {"message": "input and voice are required", "type": "invalid_request_error",
                                         "param": None, "code": None}}, 400)
    return web.Response(body=FAKE_MP3, content_type="audio/mpeg")
