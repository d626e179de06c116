"""The Anthropic, Gemini and OpenAI Responses surfaces, driven by their official SDKs, unchanged,
across providers (a Claude model through Gemini's API, a GPT model through Anthropic's, …)."""

from __future__ import annotations

import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import types as gtypes

from tests.test_chat_api import TOOLS, config, upstream  # noqa: F401 - fixture

PREFIX = {"gpt-mini": "Fake reply to: ", "claude": "Fake Claude reply to: ", "gemini": "Fake Gemini reply to: ",
          "mock-chat": "Mock reply to: "}


@pytest.fixture
def gw(make_gateway, upstream):  # noqa: F811
    gateway = make_gateway(**config(upstream.base_url))
    requests.post(f"{gateway.url}/v1/accounts/acct_default/wallet:topup", json={"amountUsd": "100"},
                  headers={"Authorization": f"Bearer {gateway.admin_key}"}, timeout=10)
    return gateway


@pytest.fixture
def claude_sdk(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.admin_key, max_retries=0)


@pytest.fixture
def gemini_sdk(gw):
    return genai.Client(api_key=gw.admin_key, http_options=gtypes.HttpOptions(base_url=gw.url, api_version="v1beta"))


@pytest.mark.parametrize("model", ["claude", "gpt-mini", "gemini", "mock-chat"])
def test_anthropic_sdk_messages_across_providers(claude_sdk, model):
    message = claude_sdk.messages.create(model=model, max_tokens=200, system="Be brief.",
                                         messages=[{"role": "user", "content": "Name a colour"}])
    assert message.type == "message" and message.role == "assistant"
    text = message.content[0].text
    assert text.startswith(PREFIX[model]) and "Name a colour" in text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    with claude_sdk.messages.stream(model=model, max_tokens=200, system="Be brief.",
                                    messages=[{"role": "user", "content": "Name a colour"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", ["claude", "gpt-mini", "gemini"])
def test_anthropic_sdk_tools(claude_sdk, model):
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    first = claude_sdk.messages.create(model=model, max_tokens=200, tools=tools, tool_choice={"type": "tool", "name": "get_weather"},
                                       messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict)
    second = claude_sdk.messages.create(model=model, max_tokens=200, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 degrees"}]},
    ])
    assert second.content[0].text


def test_anthropic_sdk_errors_and_x_api_key(gw):
    bad = anthropic.Anthropic(base_url=gw.url, api_key="tk_live_" + "0" * 32, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    good = anthropic.Anthropic(base_url=gw.url, api_key=gw.admin_key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        good.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError):
        good.messages.create(model="claude", max_tokens=10, messages=[])
    r = requests.post(f"{gw.url}/v1/messages", json={"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
                      headers={"anthropic-version": "2023-06-01"}, timeout=10)
    assert r.status_code == 401
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == r.headers["X-Request-Id"]


@pytest.mark.parametrize("model", ["gemini", "claude", "gpt-mini", "mock-chat"])
def test_google_genai_sdk_across_providers(gemini_sdk, model):
    reply = gemini_sdk.models.generate_content(
        model=model, contents="Name a colour",
        config=gtypes.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=200),
    )
    assert reply.text.startswith(PREFIX[model]) and "Name a colour" in reply.text
    assert reply.usage_metadata.prompt_token_count > 0 and reply.usage_metadata.candidates_token_count > 0
    streamed = "".join(chunk.text or "" for chunk in gemini_sdk.models.generate_content_stream(model=model, contents="Name a colour"))
    assert streamed == gemini_sdk.models.generate_content(model=model, contents="Name a colour").text


def test_google_genai_sdk_function_calls(gemini_sdk):
    tool = gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(
        name="get_weather", description="Weather for a city",
        parameters=gtypes.Schema(type="OBJECT", properties={"city": gtypes.Schema(type="STRING")}, required=["city"]))])
    reply = gemini_sdk.models.generate_content(
        model="claude", contents="Weather in Paris?",
        config=gtypes.GenerateContentConfig(tools=[tool], tool_config=gtypes.ToolConfig(
            function_calling_config=gtypes.FunctionCallingConfig(mode="ANY")), automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True)),
    )
    assert reply.function_calls and reply.function_calls[0].name == "get_weather"


def test_gemini_errors_models_and_key_styles(gw, gemini_sdk):
    names = [m.name for m in gemini_sdk.models.list()]
    assert "models/gemini" in names and "models/claude" in names
    with pytest.raises(genai.errors.ClientError) as err:
        gemini_sdk.models.generate_content(model="no-such-model", contents="hi")
    assert err.value.code == 404
    r = requests.post(f"{gw.url}/v1beta/models/gemini:generateContent", params={"key": gw.admin_key},
                      json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=10)
    assert r.status_code == 200 and r.json()["candidates"][0]["content"]["parts"][0]["text"]
    r = requests.post(f"{gw.url}/v1beta/models/gemini:generateContent", json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=10)
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == 401 and error["status"] == "UNAUTHENTICATED" and error["message"]
    assert error["details"][0]["requestId"] == r.headers["X-Request-Id"]


def test_google_genai_sdk_lists_models_a_page_at_a_time(gw, gemini_sdk):
    everything = [m.name for m in gemini_sdk.models.list()]
    assert len(everything) > 5
    pager = gemini_sdk.models.list(config={"page_size": 2})
    assert [m.name for m in pager.page] == everything[:2]
    assert [m.name for m in pager] == everything  # the SDK follows nextPageToken to the last page
    # Google's wire format, with the key in the query as Gemini clients may send it.
    url = f"{gw.url}/v1beta/models"
    first = requests.get(url, params={"key": gw.admin_key, "pageSize": 5}, timeout=10)
    assert first.status_code == 200, first.text
    assert [m["name"] for m in first.json()["models"]] == everything[:5]
    rest = requests.get(url, params={"key": gw.admin_key, "pageSize": 5, "pageToken": first.json()["nextPageToken"]}, timeout=10).json()
    assert [m["name"] for m in rest["models"]] == everything[5:10]
    whole = requests.get(url, params={"key": gw.admin_key, "pageSize": 1000}, timeout=10).json()
    assert [m["name"] for m in whole["models"]] == everything and "nextPageToken" not in whole
    for bad in ({"pageSize": "-1"}, {"pageSize": "two"}, {"pageToken": "not-one-of-ours"}):
        r = requests.get(url, params={"key": gw.admin_key, **bad}, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", r.text
    assert requests.get(url, params={"key": "tk_live_" + "0" * 32}, timeout=10).status_code == 401


@pytest.mark.parametrize("model", ["gpt-mini", "claude", "gemini", "mock-chat"])
def test_openai_responses_across_providers(gw, model):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    response = client.responses.create(model=model, instructions="Be brief.", input="Name a colour")
    assert response.status == "completed" and response.output_text.startswith(PREFIX[model])
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    events = list(client.responses.create(model=model, input="Name a colour", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == client.responses.create(model=model, input="Name a colour").output_text
    compact = requests.post(f"{gw.url}/v1/responses/compact", json={"model": model, "input": "Name a colour"},
                            headers={"Authorization": f"Bearer {gw.admin_key}"}, timeout=10)
    assert compact.status_code == 200 and compact.text == deltas


def test_responses_reasoning_effort_reaches_chat_upstreams_as_chat_parameters(gw, upstream):  # noqa: F811
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.admin_key, max_retries=0)
    client.responses.create(model="gpt-mini", input="hi", reasoning={"effort": "low"}, truncation="auto", store=False)
    sent = upstream.requests_for("openai")[-1].json
    assert sent["reasoning_effort"] == "low" and sent["store"] is False and "truncation" not in sent


def test_anthropic_extras_do_not_reach_openai_upstreams(claude_sdk, upstream):  # noqa: F811
    claude_sdk.messages.create(model="gpt-mini", max_tokens=50, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5})
    sent = upstream.requests_for("openai")[-1].json
    assert "top_k" not in sent and sent["model"] == "gpt-4o-mini"
