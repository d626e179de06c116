"""Multipart uploads through the openai SDK: image edits and variations, audio transcriptions and
translations, on the mock provider and on OpenAI-compatible and Azure upstreams, billed per image
and per second of audio."""

from __future__ import annotations

import base64
import io
import wave
from decimal import Decimal

import openai
import pytest
import requests

from tests.fake_routes.openai_media import received_form
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_FAKE_PROVIDER_KEY"
NANO = 1_000_000_000
PNG_A = b"\x89PNG\r\n\x1a\n" + b"image-a" * 20
PNG_B = b"\x89PNG\r\n\x1a\n" + b"image-b" * 20
MASK = b"\x89PNG\r\n\x1a\n" + b"mask" * 20
PER_SECOND = 100_000  # $0.0001 a second of audio, in nano-USD

# The SDK marks variations and translations deprecated; the endpoints are still OpenAI's.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def wav(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(rate * seconds))
    return buffer.getvalue()


@pytest.fixture
def gw(make_gateway, monkeypatch):
    monkeypatch.setenv(KEY_ENV, DEFAULT_API_KEY)
    mock = [{"provider": "mock", "model": "mock"}]
    with FakeUpstream() as upstream:
        gateway = make_gateway(
            providers={
                "mock": {"kind": "mock"},
                "gpt": {"kind": "openai", "base_url": f"{upstream.base_url}/v1", "api_key_env": KEY_ENV},
                "azure": {"kind": "azure", "base_url": upstream.base_url, "api_key_env": KEY_ENV, "api_version": "2024-10-21"},
            },
            models={
                "mock-edit": {"mode": "image", "usd_per_image": "0.04", "deployments": mock},
                "gpt-image": {"mode": "image", "usd_per_image": "0.02", "deployments": [{"provider": "gpt", "model": "gpt-image-1"}]},
                "mock-stt": {"mode": "transcription", "usd_per_audio_second": "0.0001", "deployments": mock},
                "whisper": {"mode": "transcription", "usd_per_audio_second": "0.0001",
                            "deployments": [{"provider": "gpt", "model": "whisper-1"}]},
                "azure-whisper": {"mode": "transcription", "usd_per_audio_second": "0.0001",
                                  "deployments": [{"provider": "azure", "model": "my-whisper"}]},
                "chat": {"deployments": mock},
            },
            routing={"retries_per_deployment": 0, "allowed_fails_per_minute": 1000},
        )
        gateway.upstream = upstream
        yield gateway


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)


def auth(gw) -> dict:
    return {"Authorization": f"Bearer {gw.admin_key}"}


def topup(gw, usd: str) -> None:
    r = requests.post(f"{gw.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": usd}, headers=auth(gw), timeout=10)
    assert r.status_code == 200


def balance(gw) -> int:
    wallet = requests.get(f"{gw.url}/v1/wallet", headers=auth(gw), timeout=10).json()
    assert wallet["reservedNanoUsd"] == 0
    return wallet["balanceNanoUsd"]


def charges(gw) -> list[int]:
    entries = requests.get(f"{gw.url}/v1/ledger", params={"pageSize": 100}, headers=auth(gw), timeout=10).json()["entries"]
    return sorted(-e["amountNanoUsd"] for e in entries if e["kind"] == "charge")


def last_upstream(gw, family: str = "openai"):
    return gw.upstream.requests_for(family)[-1]


# -- images --------------------------------------------------------------------------------------


def test_image_edit_on_the_mock_provider_billed_per_image(gw):
    topup(gw, "1")
    raw = client(gw).images.with_raw_response.edit(
        model="mock-edit", image=("fox.png", PNG_A, "image/png"), prompt="add a hat", n=2, response_format="b64_json")
    result = raw.parse()
    pngs = [base64.b64decode(d.b64_json) for d in result.data]
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs) and pngs[0] != pngs[1]
    assert Decimal(raw.headers["x-switchyard-cost-usd"]) == Decimal("0.08")
    # Several images (sent as image[]) and a mask; the answer depends on the images.
    several = client(gw).images.edit(model="mock-edit", image=[("a.png", PNG_A, "image/png"), ("b.png", PNG_B, "image/png")],
                                     mask=("mask.png", MASK, "image/png"), prompt="add a hat")
    assert len(several.data) == 1 and several.data[0].b64_json not in {d.b64_json for d in result.data}
    assert balance(gw) == NANO - 3 * 40_000_000
    assert charges(gw) == [40_000_000, 80_000_000]


def test_image_edit_through_an_openai_compatible_upstream(gw):
    topup(gw, "1")
    result = client(gw).images.edit(
        model="gpt-image", image=[("a.png", PNG_A, "image/png"), ("b.png", PNG_B, "image/png")],
        mask=("mask.png", MASK, "image/png"), prompt="make it blue", n=2, size="1024x1024", quality="high", user="u-1",
    )
    assert [d.revised_prompt for d in result.data] == ["make it blue (edit 0)", "make it blue (edit 1)"]
    sent = last_upstream(gw)
    assert sent.path == "/v1/images/edits" and sent.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    form = received_form(sent)
    assert form.fields == {"model": ["gpt-image-1"], "prompt": ["make it blue"], "size": ["1024x1024"], "user": ["u-1"],
                           "n": ["2"], "quality": ["high"]}
    assert [(f.filename, f.content_type, f.data) for f in form.files["image[]"]] == [
        ("a.png", "image/png", PNG_A), ("b.png", "image/png", PNG_B)]
    assert [(f.filename, f.data) for f in form.files["mask"]] == [("mask.png", MASK)]
    # One image goes as `image`, as the SDK sends it.
    client(gw).images.edit(model="gpt-image", image=("one.png", PNG_A, "image/png"), prompt="again", response_format="url")
    form = received_form(last_upstream(gw))
    assert set(form.files) == {"image"} and form.files["image"][0].data == PNG_A and form.field("response_format") == "url"
    assert balance(gw) == NANO - 3 * 20_000_000


def test_image_variations_on_the_mock_and_upstream(gw):
    topup(gw, "1")
    mocked = client(gw).images.create_variation(model="mock-edit", image=("fox.png", PNG_A, "image/png"), n=3)
    assert len(mocked.data) == 3 and base64.b64decode(mocked.data[0].b64_json).startswith(b"\x89PNG")
    upstream = client(gw).images.create_variation(model="gpt-image", image=("fox.png", PNG_B, "image/png"), n=2,
                                                  size="512x512", response_format="url", user="u-2")
    assert [d.url for d in upstream.data] == ["https://images.example/variation-0.png", "https://images.example/variation-1.png"]
    sent = last_upstream(gw)
    form = received_form(sent)
    assert sent.path == "/v1/images/variations"
    assert form.fields == {"model": ["gpt-image-1"], "size": ["512x512"], "response_format": ["url"], "user": ["u-2"], "n": ["2"]}
    assert [(f.filename, f.content_type, f.data) for f in form.files["image"]] == [("fox.png", "image/png", PNG_B)]
    assert charges(gw) == [40_000_000, 120_000_000]
    assert balance(gw) == NANO - 160_000_000


# -- audio ---------------------------------------------------------------------------------------


def test_transcription_formats_on_the_mock_billed_per_started_second(gw):
    topup(gw, "1")
    audio = ("hello.wav", wav(2.5), "audio/wav")
    stt = client(gw).audio.transcriptions
    as_json = stt.with_raw_response.create(model="mock-stt", file=audio)
    parsed = as_json.parse()
    assert parsed.text.startswith("Mock transcription of hello.wav: 2.5 seconds")
    assert parsed.usage.type == "duration" and parsed.usage.seconds == 3
    assert Decimal(as_json.headers["x-switchyard-cost-usd"]) == Decimal("0.0003")
    text = stt.create(model="mock-stt", file=audio, response_format="text")
    assert isinstance(text, str) and text == parsed.text
    verbose = stt.create(model="mock-stt", file=audio, response_format="verbose_json", language="de",
                         timestamp_granularities=["word", "segment"])
    assert verbose.duration == 2.5 and verbose.language == "de" and verbose.text == parsed.text
    assert verbose.segments[0].start == 0 and verbose.segments[0].end == 2.5
    assert [w.word for w in verbose.words] == parsed.text.split() and verbose.words[-1].end == pytest.approx(2.5)
    srt = stt.create(model="mock-stt", file=audio, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nMock transcription")
    vtt = stt.create(model="mock-stt", file=audio, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n")
    translated = client(gw).audio.translations.create(model="mock-stt", file=audio)
    assert translated.text.startswith("Mock translation into English of hello.wav")
    assert charges(gw) == [3 * PER_SECOND] * 6
    assert balance(gw) == NANO - 6 * 3 * PER_SECOND
    usage = requests.get(f"{gw.url}/v1/usage", headers=auth(gw), timeout=10).json()["records"]
    assert sorted(r["endpoint"] for r in usage) == ["transcriptions"] * 5 + ["translations"]
    assert {r["inputTokens"] for r in usage} == {3}  # the seconds billed


def test_transcription_through_an_openai_compatible_upstream(gw):
    topup(gw, "1")
    stt = client(gw).audio.transcriptions
    audio = wav(2.5)
    # verbose_json: the upstream's duration (12.3 s) is what is billed, as 13 started seconds.
    verbose = stt.create(model="whisper", file=("talk.wav", audio, "audio/wav"), response_format="verbose_json",
                         language="en", prompt="Switchyard", temperature=0.2, timestamp_granularities=["word"])
    assert verbose.duration == 12.3 and verbose.text == f"fake transcript of talk.wav ({len(audio)} bytes)"
    assert verbose.segments[0].tokens == [50364, 1012] and verbose.words[0].word == "fake"
    sent = last_upstream(gw)
    form = received_form(sent)
    assert sent.path == "/v1/audio/transcriptions"
    assert form.fields == {"model": ["whisper-1"], "response_format": ["verbose_json"], "prompt": ["Switchyard"],
                           "language": ["en"], "temperature": ["0.2"], "timestamp_granularities[]": ["word"]}
    assert [(f.filename, f.content_type, f.data) for f in form.files["file"]] == [("talk.wav", "audio/wav", audio)]
    # json: whisper reports the seconds in usage.
    assert stt.create(model="whisper", file=("talk.wav", audio, "audio/wav")).usage.seconds == 13
    # text: no duration from upstream, so the WAV header's 2.5 s -> 3 seconds.
    text = stt.create(model="whisper", file=("talk.wav", audio, "audio/wav"), response_format="text")
    assert text == f"fake transcript of talk.wav ({len(audio)} bytes)\n"
    # Not WAV and no duration: estimated from the size at 16 kB/s (40,000 bytes -> 2.5 s -> 3 seconds).
    mp3 = b"ID3\x04" + b"\x00" * 39_996
    srt = stt.create(model="whisper", file=("talk.mp3", mp3, "audio/mpeg"), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:12,300\nfake transcript of talk.mp3")
    assert received_form(last_upstream(gw)).files["file"][0].data == mp3
    translated = client(gw).audio.translations.create(model="whisper", file=("talk.wav", audio, "audio/wav"),
                                                      response_format="verbose_json")
    assert translated.text.startswith("fake translation of talk.wav") and translated.duration == 12.3
    sent = last_upstream(gw)
    assert sent.path == "/v1/audio/translations" and "language" not in received_form(sent).fields
    assert charges(gw) == sorted([13 * PER_SECOND, 13 * PER_SECOND, 3 * PER_SECOND, 3 * PER_SECOND, 13 * PER_SECOND])
    assert balance(gw) == NANO - 45 * PER_SECOND
    estimated = requests.get(f"{gw.url}/v1/usage", headers=auth(gw), timeout=10).json()["records"]
    assert sum(1 for r in estimated if r["usageEstimated"]) == 1


def test_transcription_on_azure(gw):
    topup(gw, "1")
    result = client(gw).audio.transcriptions.create(model="azure-whisper", file=("a.wav", wav(1.0), "audio/wav"))
    assert result.text.startswith("fake transcript of a.wav")
    sent = last_upstream(gw, "azure")
    assert sent.path == "/openai/deployments/my-whisper/audio/transcriptions" and sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == DEFAULT_API_KEY and "model" not in received_form(sent).fields
    assert charges(gw) == [13 * PER_SECOND]


def test_failed_uploads_are_not_charged(gw):
    topup(gw, "1")
    gw.upstream.set_mode("openai", "fail", status=500)
    with pytest.raises(openai.InternalServerError):
        client(gw).audio.transcriptions.create(model="whisper", file=("a.wav", wav(1.0), "audio/wav"))
    with pytest.raises(openai.InternalServerError):
        client(gw).images.edit(model="gpt-image", image=("a.png", PNG_A, "image/png"), prompt="x")
    gw.upstream.set_mode("openai", "fail", status=400, message="unsupported audio")
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).audio.translations.create(model="whisper", file=("a.wav", wav(1.0), "audio/wav"))
    assert "unsupported audio" in err.value.message
    assert balance(gw) == NANO and charges(gw) == []


def test_an_empty_wallet_cannot_reserve_the_audio(gw):
    with pytest.raises(openai.APIStatusError) as err:
        client(gw).audio.transcriptions.create(model="mock-stt", file=("a.wav", wav(1.0), "audio/wav"))
    assert err.value.status_code == 402


def test_the_default_gateway_serves_free_mock_uploads(gateway):
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.admin_key, max_retries=0)
    result = sdk.audio.transcriptions.create(model="mock-transcribe", file=("a.wav", wav(1.0), "audio/wav"))
    assert result.text.startswith("Mock transcription of a.wav: 1.0 seconds")
    assert len(sdk.images.edit(model="mock-image", image=("a.png", PNG_A, "image/png"), prompt="hat").data) == 1
    speech = sdk.audio.speech.create(model="mock-speech", voice="alloy", input="hello there", response_format="wav")
    assert speech.content[:4] == b"RIFF" and speech.response.headers["content-type"] == "audio/wav"


def test_admins_add_a_transcription_model_at_runtime(gw):
    topup(gw, "1")
    spec = {"mode": "transcription", "context_window": 1, "max_output_tokens": 1, "pricing": {"input_usd_per_million_tokens": 0, "output_usd_per_million_tokens": 0,
                                                  "usd_per_audio_second": "0.0002"},
            "deployments": [{"provider": "gpt", "upstream_model": "whisper-2"}]}
    r = requests.put(f"{gw.url}/v1/admin/models/whisper-next", json=spec, headers=auth(gw), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["pricing"] == {"input_usd_per_million_tokens": 0, "output_usd_per_million_tokens": 0, "usd_per_audio_second": 0.0002}
    assert client(gw).models.retrieve("whisper").model_extra["pricing"]["usd_per_audio_second"] == 0.0001
    client(gw).audio.transcriptions.create(model="whisper-next", file=("a.wav", wav(1.0), "audio/wav"))
    assert received_form(last_upstream(gw)).field("model") == "whisper-2"
    assert charges(gw) == [13 * 2 * PER_SECOND]


# -- bad requests --------------------------------------------------------------------------------


def _error(response: requests.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["requestId"] == response.headers["x-request-id"]
    assert set(error) == {"code", "message", "status", "requestId", "type", "param"}
    return error


def test_bad_multipart_requests_are_400s(gw):
    topup(gw, "1")
    url = f"{gw.url}/v1/audio/transcriptions"
    error = _error(requests.post(url, json={"model": "whisper"}, headers=auth(gw), timeout=10))
    assert "multipart/form-data" in error["message"] and error["type"] == "invalid_request_error"
    error = _error(requests.post(url, data={"model": "whisper"}, files={"other": ("x", b"x")}, headers=auth(gw), timeout=10))
    assert error["param"] == "other"
    error = _error(requests.post(url, files={"model": (None, "whisper")}, headers=auth(gw), timeout=10))
    assert error["param"] == "file"
    error = _error(requests.post(url, files={"model": (None, "whisper"), "file": (None, "not a file")}, headers=auth(gw), timeout=10))
    assert error["param"] == "file" and "text field" in error["message"]
    error = _error(requests.post(url, files={"model": (None, "whisper"), "file": ("a.wav", wav(0.1)), "response_format": (None, "mp3")},
                                 headers=auth(gw), timeout=10))
    assert error["param"] == "response_format"
    error = _error(requests.post(url, files={"model": (None, "chat"), "file": ("a.wav", wav(0.1))}, headers=auth(gw), timeout=10))
    assert "chat model" in error["message"]
    headers = {**auth(gw), "content-type": "multipart/form-data; boundary=xyz"}
    truncated = b'--xyz\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
    assert "closing boundary" in _error(requests.post(url, data=truncated, headers=headers, timeout=10))["message"]
    garbage = b"this is not multipart at all"
    _error(requests.post(url, data=garbage, headers=headers, timeout=10))
    _error(requests.post(url, data=garbage, headers={**auth(gw), "content-type": "multipart/form-data"}, timeout=10))
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).images.edit(model="gpt-image", image=("a.png", PNG_A, "image/png"), prompt="x", n=11)
    assert err.value.param == "n"
    with pytest.raises(openai.BadRequestError) as err:
        client(gw).images.edit(model="gpt-image", image=("a.png", PNG_A, "image/png"), prompt="x", stream=True)
    assert err.value.param == "stream"
    assert charges(gw) == [] and gw.upstream.count("openai") == 0


def test_uploads_above_the_body_limit_are_413_before_being_read(make_gateway):
    gw = make_gateway(limits={"max_body_bytes": 1024})
    with pytest.raises(openai.APIStatusError) as err:
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0).audio.transcriptions.create(
            model="mock-transcribe", file=("big.wav", wav(1.0), "audio/wav"))
    assert err.value.status_code == 413 and err.value.body["code"] == "payload_too_large"

    def chunked():  # no Content-Length: refused while streaming
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        for _ in range(64):
            yield b"\x00" * 256

    r = requests.post(f"{gw.url}/v1/audio/transcriptions", data=chunked(), timeout=10,
                      headers={"Authorization": f"Bearer {gw.admin_key}", "content-type": "multipart/form-data; boundary=xyz"})
    _error(r, 413)
