"""The shared reader of vendor JSON (edge/dialects/vendor_json.py), with each vendor's wording.

Table-driven: every reader accepts what its JSON type allows, refuses a missing field and a value of
the wrong type in the vendor's own words, and names the field by the path the dialect gave it.
The dialect suites (test_dialect_*.py) check the same messages through whole request bodies."""

from __future__ import annotations

import math

import pytest

from edge.dialects import anthropic, gemini, openai, openai_responses
from edge.dialects.vendor_json import DialectError, VendorJson, Wording, request_body

OPENAI, GEMINI, ANTHROPIC = openai.read, gemini.read, anthropic.read
PATH = "messages[1].content[0].x"  # any path: the reader must hand it back untouched


def refusal(call) -> tuple[str, str | None]:
    with pytest.raises(DialectError) as caught:
        call()
    return caught.value.message, caught.value.param


# (reader name, extra args after (value, param), a value it accepts, what it returns for it)
VALUE_READERS = [
    ("object", (), {"a": 1}, {"a": 1}),
    ("array", (), [1], [1]),
    ("non_empty_array", (), [None], [None]),
    ("string", (), "", ""),
    ("non_empty_string", (), "x", "x"),
    ("optional_str", (), "x", "x"),
    ("boolean", (), False, False),
    ("integer", (1, 10), 10, 10),
    ("number", (0, 2), 1, 1.0),
    ("one_of", (("auto", "none"),), "none", "none"),
]


@pytest.mark.parametrize(("reader", "args", "value", "expected"), VALUE_READERS, ids=[r[0] for r in VALUE_READERS])
@pytest.mark.parametrize("read", [OPENAI, GEMINI, ANTHROPIC], ids=["openai", "gemini", "anthropic"])
def test_value_readers_accept(read, reader, args, value, expected):
    result = getattr(read, reader)(value, PATH, *args)
    assert result == expected and type(result) is type(expected)


def test_null_means_unset_for_the_optional_readers():
    for read in (OPENAI, GEMINI, ANTHROPIC):
        assert read.optional_str(None, "user") == ""
        assert read.boolean(None, "stream") is False


# (reader, args, the wrong value, OpenAI's message, Gemini's, Anthropic's); {p} is the path.
WRONG_TYPES = [
    ("object", (), [], "Invalid type for '{p}': expected an object, but got an array instead.",
     "Invalid value at '{p}': expected an object, but got an array.", "{p}: Input should be a valid dictionary"),
    ("array", (), {}, "Invalid type for '{p}': expected an array, but got an object instead.",
     "Invalid value at '{p}': expected an array, but got an object.", "{p}: Input should be a valid list"),
    ("string", (), 1.5, "Invalid type for '{p}': expected a string, but got a decimal number instead.",
     "Invalid value at '{p}': expected a string, but got a number.", "{p}: Input should be a valid string"),
    ("non_empty_string", (), None, "Invalid type for '{p}': expected a string, but got null instead.",
     "Invalid value at '{p}': expected a string, but got null.", "{p}: Input should be a valid string"),
    ("optional_str", (), 7, "Invalid type for '{p}': expected a string, but got an integer instead.",
     "Invalid value at '{p}': expected a string, but got an integer.", "{p}: Input should be a valid string"),
    ("boolean", (), "true", "Invalid type for '{p}': expected a boolean, but got a string instead.",
     "Invalid value at '{p}': expected a boolean, but got a string.", "{p}: Input should be a valid boolean"),
    # True is an int in Python, never an integer in JSON.
    ("integer", (0, 9), True, "Invalid type for '{p}': expected an integer, but got a boolean instead.",
     "Invalid value at '{p}': expected an integer, but got a boolean.", "{p}: Input should be a valid integer"),
    ("integer", (0, 9), 1.0, "Invalid type for '{p}': expected an integer, but got a decimal number instead.",
     "Invalid value at '{p}': expected an integer, but got a number.", "{p}: Input should be a valid integer"),
    ("number", (0, 2), "1", "Invalid type for '{p}': expected a decimal, but got a string instead.",
     "Invalid value at '{p}': expected a number, but got a string.", "{p}: Input should be a valid number"),
]


# (reader, args, the bad value, OpenAI's message, Gemini's, Anthropic's)
OUT_OF_RANGE = [
    ("integer", (1, 128), 0, "Invalid '{p}': integer below minimum value. Expected a value >= 1, but got 0 instead.",
     "Invalid value at '{p}': must be between 1 and 128, but got 0.", "{p}: Input should be greater than or equal to 1"),
    ("integer", (1, 128), 129, "Invalid '{p}': integer above maximum value. Expected a value <= 128, but got 129 instead.",
     "Invalid value at '{p}': must be between 1 and 128, but got 129.", "{p}: Input should be less than or equal to 128"),
    ("number", (0, 2), -0.5, "Invalid '{p}': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
     "Invalid value at '{p}': must be between 0 and 2, but got -0.5.", "{p}: Input should be greater than or equal to 0"),
    ("number", (0, 2), 2.5, "Invalid '{p}': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
     "Invalid value at '{p}': must be between 0 and 2, but got 2.5.", "{p}: Input should be less than or equal to 2"),
    # Only Python callers can send NaN; it must fail, and as below the range (it compares as nothing).
    ("number", (0, 2), math.nan, "Invalid '{p}': decimal below minimum value. Expected a value >= 0, but got nan instead.",
     "Invalid value at '{p}': must be between 0 and 2, but got nan.", "{p}: Input should be greater than or equal to 0"),
    ("non_empty_string", (), "", "Invalid '{p}': empty string. Expected a non-empty string.",
     "Invalid value at '{p}': must not be empty.", "{p}: String should have at least 1 character"),
    ("non_empty_array", (), [], "Invalid '{p}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
     "Invalid value at '{p}': must not be empty.", "{p}: List should have at least 1 item after validation, not 0"),
]


@pytest.mark.parametrize(
    ("reader", "args", "value", "openai_says", "gemini_says", "anthropic_says"),
    WRONG_TYPES + OUT_OF_RANGE,
    ids=[f"{r[0]}-{r[2]!r}" for r in WRONG_TYPES + OUT_OF_RANGE],
)
def test_refusals_in_each_vendors_words(reader, args, value, openai_says, gemini_says, anthropic_says):
    for read, says in ((OPENAI, openai_says), (GEMINI, gemini_says), (ANTHROPIC, anthropic_says)):
        assert refusal(lambda: getattr(read, reader)(value, PATH, *args)) == (says.format(p=PATH), PATH)


def test_one_of_lists_the_choices_the_vendors_way():
    modes = ("none", "auto", "required")
    assert refusal(lambda: OPENAI.one_of("always", "tool_choice", modes)) == (
        "Invalid 'tool_choice': unsupported value 'always'. Supported values are: 'none', 'auto', 'required'.",
        "tool_choice",
    )
    # OpenAI calls a non-string a wrong type; Anthropic (pydantic) names the choices for any value.
    assert refusal(lambda: OPENAI.one_of(3, "tool_choice", modes)) == (
        "Invalid type for 'tool_choice': expected a string, but got an integer instead.",
        "tool_choice",
    )
    for value in ("system", 3, None):
        assert refusal(lambda: ANTHROPIC.one_of(value, "messages.0.role", ("user", "assistant"))) == (
            "messages.0.role: Input should be 'user' or 'assistant'",
            "messages.0.role",
        )
    assert refusal(lambda: ANTHROPIC.one_of("x", "system.0.type", ("text",))) == (
        "system.0.type: Input should be 'text'",
        "system.0.type",
    )


# (reader, extra args, a value it accepts) for the readers of a container's field.
FIELD_READERS = [
    ("required", (), 0),
    ("required_object", (), {}),
    ("required_array", (), ["x"]),
    ("required_text", (), ""),
    ("required_str", (), "gpt-4o"),
    ("required_one_of", (("user", "assistant"),), "user"),
]
MISSING = {
    "openai": "Missing required parameter: 'messages[1].content[0].x'.",
    "gemini": "Missing required field 'messages[1].content[0].x'.",
    "anthropic": "messages[1].content[0].x: Field required",
}


@pytest.mark.parametrize(("reader", "args", "value"), FIELD_READERS, ids=[r[0] for r in FIELD_READERS])
@pytest.mark.parametrize("vendor", ["openai", "gemini", "anthropic"])
def test_field_readers_accept_and_refuse_missing_and_null(vendor, reader, args, value):
    read = {"openai": OPENAI, "gemini": GEMINI, "anthropic": ANTHROPIC}[vendor]
    read_field = getattr(read, reader)
    assert read_field({"x": value, "y": 1}, "x", PATH, *args) == value
    # Clients send null for "not set": a required field sent as null is missing, not a wrong type.
    for container in ({}, {"y": 1}, {"x": None}):
        assert refusal(lambda: read_field(container, "x", PATH, *args)) == (MISSING[vendor], PATH)


def test_field_readers_check_the_type_after_presence():
    assert refusal(lambda: OPENAI.required_str({"model": 4}, "model", "model")) == (
        "Invalid type for 'model': expected a string, but got an integer instead.",
        "model",
    )
    assert refusal(lambda: OPENAI.required_str({"model": ""}, "model", "model")) == (
        "Invalid 'model': empty string. Expected a non-empty string.",
        "model",
    )
    assert refusal(lambda: GEMINI.required_array({"contents": []}, "contents", "contents")) == (
        "Invalid value at 'contents': must not be empty.",
        "contents",
    )
    assert refusal(lambda: ANTHROPIC.required_object({"input": "{}"}, "input", "messages.1.content.0.input")) == (
        "messages.1.content.0.input: Input should be a valid dictionary",
        "messages.1.content.0.input",
    )


def test_type_of_reads_a_tagged_object():
    assert OPENAI.type_of({"type": "text", "text": "hi"}, "messages[0].content[0]") == "text"
    assert OPENAI.type_of({"type": ""}, "p") == ""  # an unknown type is the dialect's to judge
    assert refusal(lambda: OPENAI.type_of("text", "messages[0].content[0]")) == (
        "Invalid type for 'messages[0].content[0]': expected an object, but got a string instead.",
        "messages[0].content[0]",
    )
    assert refusal(lambda: ANTHROPIC.type_of({"text": "hi"}, "messages.0.content.1")) == (
        "messages.0.content.1.type: Field required",
        "messages.0.content.1.type",
    )
    assert refusal(lambda: GEMINI.type_of({"type": 1}, "tools[0]")) == (
        "Invalid value at 'tools[0].type': expected a string, but got an integer.",
        "tools[0].type",
    )


def test_optional_numbers_copies_the_set_ones_in_table_order():
    table = (("temperature", "temperature", 0, 2), ("top_p", "top_p", 0, 1))
    fields: dict = {}
    OPENAI.optional_numbers({"temperature": 1, "top_p": None}, fields, table)
    assert fields == {"temperature": 1.0}
    # Two bad values: the client hears about the first in the table, whatever the body's key order.
    assert refusal(lambda: OPENAI.optional_numbers({"top_p": 5, "temperature": 5}, {}, table))[1] == "temperature"


def test_request_body_must_be_an_object():
    assert request_body({"model": "m"}) == {"model": "m"}
    for body in ([], "x", None, 1):
        assert refusal(lambda: request_body(body)) == ("The request body must be a JSON object.", None)


def test_the_openai_surfaces_share_one_reader_and_one_error_class():
    # Chat Completions, Responses and the media endpoints answer mistakes in the same words.
    assert openai_responses.read is openai.read
    assert openai.DialectError is gemini.DialectError is anthropic.DialectError is DialectError


def test_a_new_vendor_only_brings_its_words():
    shouting = VendorJson(
        Wording(
            missing="{param} IS MISSING",
            wrong_type="{param} MUST BE {expected}, NOT {got}",
            invalid="{param} IS WRONG: {detail}",
            got_decimal="A FLOAT",
            string="TEXT",
            object="A MAP",
            array="A LIST",
            integer="A WHOLE NUMBER",
            number="A NUMBER",
            boolean="YES OR NO",
            empty_string="EMPTY",
            empty_array="EMPTY",
            below="UNDER {minimum}",
            above="OVER {maximum}",
            unsupported="{value} IS NOT ONE OF {choices}",
            choices_last_separator=" OR ",
        )
    )
    assert refusal(lambda: shouting.required_str({}, "model", "model")) == ("model IS MISSING", "model")
    assert refusal(lambda: shouting.integer(2.5, "n", 1, 2)) == ("n MUST BE A WHOLE NUMBER, NOT A FLOAT", "n")
    assert refusal(lambda: shouting.integer(3, "n", 1, 2)) == ("n IS WRONG: OVER 2", "n")
    assert refusal(lambda: shouting.one_of("c", "k", ("a", "b"))) == ("k IS WRONG: c IS NOT ONE OF 'a' OR 'b'", "k")
