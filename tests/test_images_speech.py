"""Images and speech through the openai SDK, on the mock provider and an OpenAI-compatible upstream,
billed per image and per character."""

from __future__ import annotations

import base64
import io
import wave
from decimal import Decimal

import openai
import pytest
import requests

from tests.fake_routes.openai_media import FAKE_MP3
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"


@pytest.fixture
def gw(make_gateway, monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    with FakeUpstream() as upstream:
        gateway = make_gateway(
            providers={"mock": {"kind": "mock"}, "gpt": {"kind": "openai", "base_url": f"{upstream.base_url}/v1", "api_key_env": KEY_ENV}},
            models={
                "mock-image": {"mode": "image", "usd_per_image": "0.04", "deployments": [{"provider": "mock", "model": "mock"}]},
                "gpt-image": {"mode": "image", "usd_per_image": "0.02", "deployments": [{"provider": "gpt", "model": "gpt-image-1"}]},
                "mock-tts": {"mode": "speech", "usd_per_million_characters": "15", "deployments": [{"provider": "mock", "model": "mock"}]},
                "gpt-tts": {"mode": "speech", "usd_per_million_characters": "30", "deployments": [{"provider": "gpt", "model": "tts-1"}]},
                "chat": {"deployments": [{"provider": "mock", "model": "mock"}]},
            },
        )
        gateway.upstream = upstream
        yield gateway


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)


def topup(gw, usd: str) -> None:
    r = requests.post(f"{gw.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": usd},
                      headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10)
    assert r.status_code == 200


def balance(gw) -> int:
    return requests.get(f"{gw.url}/v1/wallet", headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10).json()["balanceNanoUsd"]


def test_images_on_the_mock_provider_are_real_pngs_billed_per_image(gw):
    topup(gw, "1")
    raw = client(gw).images.with_raw_response.generate(model="mock-image", prompt="a red fox", n=2, response_format="b64_json")
    result = raw.parse()
    assert len(result.data) == 2
    pngs = [base64.b64decode(d.b64_json) for d in result.data]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs) and pngs[0] != pngs[1]
    assert Decimal(raw.headers["x-switchyard-cost-usd"]) == Decimal("0.08")
    assert balance(gw) == 1_000_000_000 - 80_000_000


def test_images_through_an_openai_compatible_upstream(gw):
    topup(gw, "1")
    result = client(gw).images.generate(model="gpt-image", prompt="a lighthouse", n=3, size="1024x1024", quality="high")
    assert len(result.data) == 3 and result.data[0].revised_prompt == "a lighthouse (0)"
    sent = gw.upstream.requests_for("openai")[-1]
    assert sent.path == "/v1/images/generations"
    assert sent.json == {"prompt": "a lighthouse", "model": "gpt-image-1", "size": "1024x1024", "n": 3, "quality": "high"}
    assert balance(gw) == 1_000_000_000 - 60_000_000


def test_speech_returns_audio_bytes_billed_per_character(gw):
    topup(gw, "1")
    text = "Hello from Switchyard. " * 4
    audio = client(gw).audio.speech.create(model="mock-tts", voice="alloy", input=text)
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert wav.getframerate() == 16_000 and wav.getnframes() > 0
    assert audio.response.headers["content-type"] == "audio/wav"
    cost = len(text) * 15_000  # $15 per million characters = 15,000 nano-USD a character
    assert balance(gw) == 1_000_000_000 - cost

    upstream_audio = client(gw).audio.speech.create(model="gpt-tts", voice="nova", input="hi", response_format="mp3")
    assert upstream_audio.content == FAKE_MP3 and upstream_audio.response.headers["content-type"] == "audio/mpeg"
    assert gw.upstream.requests_for("openai")[-1].json == {"input": "hi", "voice": "nova", "model": "tts-1", "response_format": "mp3"}


def test_media_errors(gw):
    with pytest.raises(openai.APIStatusError) as err:
        client(gw).images.generate(model="mock-image", prompt="x")
    assert err.value.status_code == 402  # an empty wallet
    topup(gw, "1")
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).images.generate(model="chat", prompt="x")
    assert "chat model" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).audio.speech.create(model="mock-tts", voice="alloy", input="x", response_format="ogg")
    assert err.value.param == "response_format"
    with pytest.raises(openai.NotFoundError):
        client(gw).images.generate(model="no-such", prompt="x")
    gw.upstream.set_mode("openai", "fail", status=500)
    with pytest.raises(openai.InternalServerError):
        client(gw).images.generate(model="gpt-image", prompt="x")
    assert balance(gw) == 1_000_000_000  # failures are not charged
