"""Reading a vendor's request JSON: the type, presence and range checks every dialect makes, worded
the way that vendor words its own errors.

One `VendorJson` per dialect, built at import from the dialect's `Wording`; its readers run on every
request, so they do no work beyond the checks on the happy path (the wording templates are only
formatted when a client is about to get an error). Every reader takes `param`, the path of the field
as the client should see it in the error ("messages[2].role", "messages.2.role"): the dialect
spells paths its vendor's way, and a reader adds to one only the `.type` of `type_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DialectError", "VendorJson", "Wording", "request_body"]


class DialectError(ValueError):
    """The client sent something the dialect cannot accept; `param` names the field the vendor's way."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def request_body(body: object) -> dict:
    """The parsed request body, which every vendor requires to be one JSON object."""
    if not isinstance(body, dict):
        raise DialectError("The request body must be a JSON object.", None)
    return body


@dataclass(frozen=True, slots=True)
class Wording:
    """How one vendor words a client's mistake. Templates are `str.format` strings; each names the
    fields it may use, and a template may leave any of them out (Anthropic never says what it got)."""

    missing: str  # {param}
    wrong_type: str  # {param}, {expected} (one of the type names below or the caller's), {got}
    invalid: str  # {param}, {detail}
    # What a JSON value is called in "but got ...": a float (the other kinds are the same everywhere).
    got_decimal: str
    # The names of the JSON types in `wrong_type`'s {expected}.
    string: str
    object: str
    array: str
    integer: str
    number: str
    boolean: str
    # `invalid` details.
    empty_string: str
    empty_array: str
    below: str  # {what} ("integer" or "decimal"), {minimum}, {maximum}, {value}
    above: str  # the same fields
    # An `invalid` detail for a value outside a closed set: {value}, {choices} (the allowed values
    # quoted, joined with ", " and the last separator).
    unsupported: str
    choices_last_separator: str = ", "
    # True: a non-string is a wrong type; False: any wrong value gets `unsupported` (pydantic's way).
    choices_are_strings: bool = True


def _got(value: object, decimal: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return decimal
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class VendorJson:
    """The readers of one vendor's JSON. Readers named after a JSON type take the value; `required_*`
    readers take the container and key, so a missing field gets the vendor's "missing" wording."""

    __slots__ = ("words",)

    def __init__(self, words: Wording) -> None:
        self.words = words

    # -- errors ----------------------------------------------------------------------------------

    def missing(self, param: str) -> DialectError:
        return DialectError(self.words.missing.format(param=param), param)

    def wrong_type(self, param: str, expected: str, value: object) -> DialectError:
        words = self.words
        got = _got(value, words.got_decimal)
        return DialectError(words.wrong_type.format(param=param, expected=expected, got=got), param)

    def invalid(self, param: str, detail: str) -> DialectError:
        return DialectError(self.words.invalid.format(param=param, detail=detail), param)

    def unsupported(self, param: str, value: object, allowed) -> DialectError:
        words = self.words
        if words.choices_are_strings and not isinstance(value, str):
            return self.wrong_type(param, words.string, value)
        quoted = [f"'{a}'" for a in allowed]
        choices = ", ".join(quoted[:-1]) + words.choices_last_separator + quoted[-1] if len(quoted) > 1 else quoted[0]
        return self.invalid(param, words.unsupported.format(value=value, choices=choices))

    def _refused(self, value: object, param: str, kind: type, expected: str, empty: str | None) -> DialectError:
        """Why `value` failed a reader that wants a `kind` (non-empty when `empty` says how to say so)."""
        if empty is not None and isinstance(value, kind):
            return self.invalid(param, empty)
        return self.wrong_type(param, expected, value)

    def _field_refused(self, value: object, param: str, kind: type, expected: str, empty: str | None = None) -> DialectError:
        if value is None:
            return self.missing(param)
        return self._refused(value, param, kind, expected, empty)

    def _out_of_range(self, param: str, what: str, minimum, maximum, value) -> DialectError:
        # NaN is neither >= nor < anything: it is reported as below the minimum.
        template = self.words.above if value >= minimum else self.words.below
        return self.invalid(param, template.format(what=what, minimum=minimum, maximum=maximum, value=value))

    # -- values ------------------------------------------------------------------------------------
    # Each reader is one check on the happy path (they run many times a request); working out which
    # error to give is left to the helpers above.

    def object(self, value: object, param: str) -> dict:
        if isinstance(value, dict):
            return value
        raise self.wrong_type(param, self.words.object, value)

    def array(self, value: object, param: str) -> list:
        if isinstance(value, list):
            return value
        raise self.wrong_type(param, self.words.array, value)

    def non_empty_array(self, value: object, param: str) -> list:
        if isinstance(value, list) and value:
            return value
        raise self._refused(value, param, list, self.words.array, self.words.empty_array)

    def string(self, value: object, param: str) -> str:
        if isinstance(value, str):
            return value
        raise self.wrong_type(param, self.words.string, value)

    def non_empty_string(self, value: object, param: str) -> str:
        if isinstance(value, str) and value:
            return value
        raise self._refused(value, param, str, self.words.string, self.words.empty_string)

    def optional_str(self, value: object, param: str) -> str:
        """A string that may be absent (null): "" then."""
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        raise self.wrong_type(param, self.words.string, value)

    def boolean(self, value: object, param: str) -> bool:
        """A flag that may be absent (null): False then."""
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        raise self.wrong_type(param, self.words.boolean, value)

    def integer(self, value: object, param: str, minimum: int, maximum: int) -> int:
        # type() rather than isinstance(): True is an int in Python but not an integer in JSON.
        if type(value) is not int:
            if type(value) is float and value.is_integer() and not minimum <= value <= maximum:
                # JSON integers beyond 64 bits reach us as floats (orjson): out of range, not "a decimal".
                raise self._out_of_range(param, "integer", minimum, maximum, value)
            raise self.wrong_type(param, self.words.integer, value)
        if not minimum <= value <= maximum:
            raise self._out_of_range(param, "integer", minimum, maximum, value)
        return value

    def number(self, value: object, param: str, minimum: float, maximum: float) -> float:
        if type(value) is not float and type(value) is not int:
            raise self.wrong_type(param, self.words.number, value)
        # Written so that NaN (possible from Python callers, never from JSON) fails too.
        if not minimum <= value <= maximum:
            raise self._out_of_range(param, "decimal", minimum, maximum, value)
        return float(value)

    def one_of(self, value: object, param: str, allowed) -> str:
        """A string from a closed set (`allowed` in the order the error should list it)."""
        if isinstance(value, str) and value in allowed:
            return value
        raise self.unsupported(param, value, allowed)

    def optional_numbers(self, body: dict, fields: dict, ranges: tuple[tuple[str, str, float, float], ...]) -> None:
        """For each (key, field, minimum, maximum): a number body[key], if set (not null), into
        fields[field]; checked in the table's order, so the first bad one is the one reported."""
        for key, field, minimum, maximum in ranges:
            if (value := body.get(key)) is not None:
                fields[field] = self.number(value, key, minimum, maximum)

    # -- fields of an object -------------------------------------------------------------------------
    # A field that is absent or null is missing: clients send null for "not set".

    def required(self, container: dict, key: str, param: str) -> object:
        value = container.get(key)
        if value is None:
            raise self.missing(param)
        return value

    def required_object(self, container: dict, key: str, param: str) -> dict:
        value = container.get(key)
        if isinstance(value, dict):
            return value
        raise self._field_refused(value, param, dict, self.words.object)

    def required_array(self, container: dict, key: str, param: str) -> list:
        """A required array of at least one element."""
        value = container.get(key)
        if isinstance(value, list) and value:
            return value
        raise self._field_refused(value, param, list, self.words.array, self.words.empty_array)

    def required_text(self, container: dict, key: str, param: str) -> str:
        """A required string that may be empty (a message's text, a call's arguments)."""
        value = container.get(key)
        if isinstance(value, str):
            return value
        raise self._field_refused(value, param, str, self.words.string)

    def required_str(self, container: dict, key: str, param: str) -> str:
        """A required non-empty string (a model, a name, an id)."""
        value = container.get(key)
        if isinstance(value, str) and value:
            return value
        raise self._field_refused(value, param, str, self.words.string, self.words.empty_string)

    def required_one_of(self, container: dict, key: str, param: str, allowed) -> str:
        value = container.get(key)
        if isinstance(value, str) and value in allowed:
            return value
        if value is None:
            raise self.missing(param)
        raise self.unsupported(param, value, allowed)

    def type_of(self, block: object, param: str) -> str:
        """The `type` of a tagged object (a content part, a tool, an input item): the object must be
        one and say its type; an unknown type is the caller's to judge."""
        if not isinstance(block, dict):
            raise self.wrong_type(param, self.words.object, block)
        kind = block.get("type")
        if isinstance(kind, str):
            return kind
        raise self._field_refused(kind, f"{param}.type", str, self.words.string)
