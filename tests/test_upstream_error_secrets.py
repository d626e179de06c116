"""An upstream's error text reaches clients only with the provider's secrets taken out.

Upstreams, and proxies in front of them, echo what they were sent in their error bodies. Whatever
they echo, a client never sees the provider's API key nor the value of any header configured for it
(providers.<name>.headers: organisation ids, proxy tokens...), short values included. Enumerated over
every provider kind (OpenAI-compatible, Anthropic, Gemini), every chat surface (OpenAI chat, Anthropic
Messages, Gemini generateContent), streamed and not, for refusals (400/404/422), server errors, and
error events in a stream before and after its first output, against the fake upstream on 127.0.0.1.
"""

from __future__ import annotations

import pytest
import requests

from tests.chat_surfaces import (
    SURFACES,
    answers,
    ask,
    funded_gateway,
    keyed_upstream,
    models_of_every_kind,
    providers_of_every_kind,
)
from tests.fake_upstream import DEFAULT_API_KEY, FakeUpstream

KEY_ENV = "SWITCHYARD_TEST_SECRETS_PROVIDER_KEY"
SECRET = "hdrsecret_ABCDEFGH12345"
PIN = "pin4321"  # shorter than a key, still the operator's secret
SECRETS = (SECRET, PIN, DEFAULT_API_KEY)
HEADERS = {"X-Secret-Hdr": SECRET, "X-Proxy-Pin": PIN}

MODELS = {"openai": "gpt", "anthropic": "claude", "gemini": "gemini"}


@pytest.fixture(scope="module")
def upstream():
    with keyed_upstream(KEY_ENV) as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(tmp_path_factory, upstream):
    base = upstream.base_url
    common = {"api_key_env": KEY_ENV, "headers": HEADERS}
    config = {
        "providers": providers_of_every_kind(base, **common),
        "models": models_of_every_kind(),
        "limits": {"default_rate_limit_per_minute": 100_000},
        "routing": {"retries_per_deployment": 0, "allowed_fails_per_minute": 100_000},
    }
    # Priced from the built-in catalogue.
    with funded_gateway(tmp_path_factory.mktemp("secrets"), **config) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _reset(upstream):
    upstream.reset()
    yield
    upstream.gemini_canned = None


def error_of(surface: str, r: requests.Response) -> dict:
    """The error a client of `surface` reads: the body's, or a stream's error event's."""
    events = answers(r)
    errors = [e for e in events if "error" in e]
    assert len(errors) == 1 and errors[0] is events[-1], r.text
    body = errors[0]
    if surface == "anthropic-messages":
        assert body["type"] == "error"
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_no_secret(r: requests.Response) -> None:
    for secret in SECRETS:
        assert secret not in r.text, r.text
        assert not [v for v in r.headers.values() if secret in v]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_refusal_echoing_the_request_shows_its_message_without_secrets(gw, upstream, status, kind, surface, stream):
    upstream.set_mode(kind, "fail", status=status, message="Your request was refused", echo_headers=True, times=1)
    r = ask(gw, surface, MODELS[kind], stream)
    assert_no_secret(r)
    # The upstream's own message is what a refusal passes on: with the secrets taken out, not dropped.
    assert r.status_code == 400, r.text
    message = error_of(surface, r)["message"]
    assert "Your request was refused" in message and message.count("[redacted]") >= 2, message
    assert sent_secrets(upstream, kind)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_a_long_message_is_cut_after_its_secrets_are_taken_out(gw, upstream, kind, stream):
    """Messages are cut to 500 characters: a secret across the cut is not left half shown."""
    # The secret's characters 481 to 504 straddle the cut.
    upstream.set_mode(kind, "fail", status=400, message="x" * 480 + f" {SECRET} " + "y" * 2000, times=1)
    r = ask(gw, "openai-chat", MODELS[kind], stream)
    assert r.status_code == 400, r.text
    message = error_of("openai-chat", r)["message"]
    assert SECRET[:6] not in message and message.startswith("x" * 480 + " [redacted] yyy"), message
    assert len(message) <= 501


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", list(MODELS))
def test_a_server_error_echoing_the_request_shows_no_secret(gw, upstream, kind, surface, stream):
    upstream.set_mode(kind, "fail", status=500, message="It broke", echo_headers=True, times=1)
    r = ask(gw, surface, MODELS[kind], stream)
    assert_no_secret(r)
    assert r.status_code == 503, r.text
    error_of(surface, r)
    assert sent_secrets(upstream, kind)


def quoting(what: str) -> str:
    return f"{what}; you sent x-secret-hdr={SECRET}, x-proxy-pin={PIN}, key={DEFAULT_API_KEY}"


def fail_mid_stream(upstream, kind: str, after_output: bool) -> None:
    """The upstream's stream answers an error event that quotes the secrets, first or after some output."""
    if kind == "openai":
        upstream.set_mode("openai", "cut", after_chunks=3 if after_output else 0, error=quoting("Stream failed"), times=1)
    elif kind == "anthropic":
        upstream.set_mode("anthropic", "cut", after_events=5 if after_output else 0, error="invalid_request_error",
                          message=quoting("Stream failed"), times=1)
    else:
        event = {"error": {"code": 400, "message": quoting("Stream failed"), "status": "INVALID_ARGUMENT"}}
        output = {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Fake Gemini reply"}]}}]}
        upstream.gemini_canned = {"status": 200, "body": [output, event] if after_output else [event]}


@pytest.mark.parametrize("after_output", [False, True], ids=["before output", "after output"])
@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("kind", list(MODELS))
def test_an_error_event_in_a_stream_shows_no_secret(gw, upstream, kind, surface, after_output):
    fail_mid_stream(upstream, kind, after_output)
    r = ask(gw, surface, MODELS[kind], True)
    assert_no_secret(r)
    message = error_of(surface, r)["message"]
    assert "Stream failed" in message and message.count("[redacted]") == 3, message
    if after_output:
        assert r.status_code == 200 and "Fake" in r.text


def sent_secrets(upstream: FakeUpstream, kind: str) -> bool:
    """The secrets did go upstream (so their absence above is the gateway's doing, not the fake's)."""
    headers = upstream.requests_for(kind)[-1].headers
    return headers["x-secret-hdr"] == SECRET and headers["x-proxy-pin"] == PIN
