"""Shared machinery of the fuzz suites (test_fuzz_rest.py, test_fuzz_grpc.py).

Cases are derived from the contract, not listed by hand: every HttpRule binding and every field of
its request message (for vendor-shaped routes: every field of a documented vendor request body),
mutated with values a careless or hostile client sends. Generation is seeded and bounded, so a run
is reproducible and a failure names the exact case (`Case.label`).

The budget per binding is FUZZ_EXAMPLES (default below); `SWITCHYARD_FUZZ_EXAMPLES=2000` runs a deep
local sweep with the same seed-derived order.
"""

from __future__ import annotations

import base64
import os
import random
import re
import socket
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Iterator
from urllib.parse import quote

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from edge.codecs import route_table
from edge.httprule import parse_template
from edge.routes import Binding
from services.policy import service_descriptors

SEED = 20261201
FUZZ_EXAMPLES = int(os.environ.get("SWITCHYARD_FUZZ_EXAMPLES", "250"))
# The edge's own table: each binding with its codec and surface, and the surface of any other path.
ROUTE_TABLE = route_table()
surface_of = ROUTE_TABLE.surface_of

# ----------------------------------------------------------------------------------------------
# Values. Raw: a JSON token written verbatim (numbers no parser can hold, invalid escapes, raw bytes).


@dataclass(frozen=True)
class Raw:
    token: bytes

    def __repr__(self) -> str:
        return f"Raw({self.token[:40]!r})"


def dumps(value) -> bytes:
    """JSON text of `value`, with Raw tokens spliced in; big ints stay exact digits."""
    if isinstance(value, Raw):
        return value.token
    if value is None:
        return b"null"
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, str):
        import json

        return json.dumps(value).encode()
    if isinstance(value, list):
        return b"[" + b",".join(dumps(v) for v in value) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(dumps(str(k)) + b":" + dumps(v) for k, v in value.items()) + b"}"
    raise TypeError(type(value))


def nested(depth: int, kind: str = "object") -> Raw:
    """`depth` levels of objects (or arrays), as raw JSON text: no recursion on our side."""
    if kind == "object":
        return Raw(b'{"a":' * depth + b"1" + b"}" * depth)
    return Raw(b"[" * depth + b"1" + b"]" * depth)


INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
HUGE_NUMBERS = [
    2**31 - 1, 2**31, -(2**31) - 1, INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 2**64,
    int("9" * 30), -int("9" * 30), 1e30, -1e30, 1e308, Raw(b"1e999999"), Raw(b"-1e999999"), -1, 0, 1.5,
]
NASTY_STRINGS = [
    "", "\u0000", "a\u0000b", "x" * 20_000, "\r\n", "../../etc/passwd", "😀" * 50, "9" * 30, "1e30", "1e999999",
    "-1", "NaN", "Infinity", "%00", "{{prompt}}", "' OR 1=1 --", " ", "\t", "\u202e", "\ufeff",
    Raw(b'"\\ud800"'), Raw(b'"\xff\xfe"'), Raw(b'"\\u0000"'),
]
WRONG_TYPES = [None, True, False, [], {}, [None], {"": None}, "x", 1, -1, 0.5, nested(40), nested(40, "array")]
TIMESTAMPS = [
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999999-23:59", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "2026-13-45T25:61:61Z",
    "2026-01-01", "now", "", "1970-01-01T00:00:00.9999999999Z", "2026-01-01T00:00:00+99:00", 1e30, 0, -1,
]
ENUM_VALUES = ["NOT_A_VALUE", "", 999, -1, 2**31, 1.5, "active", "KEY_STATE_ACTIVE\u0000"]

QUERY_VALUES = [
    "", "\x00", "a\x00b", "9" * 30, "-" + "9" * 30, "-1", "0", "2147483648", "9223372036854775808", "1e30",
    "1e999999", "9999-12-31", "9999-12-31T23:59:59Z", "0000-00-00", "10000-01-01", "2026-02-30", "abc",
    "true", "x" * 5000, "\r\n", "..", "😀",
    base64.urlsafe_b64encode(b"9" * 30).decode(), base64.urlsafe_b64encode(b"-1").decode(),
    base64.urlsafe_b64encode(b'{"a":1}').decode(), "!!!", "=",
]
# Percent-encoded path segments (and one raw, invalid-UTF-8 one).
PATH_VALUES = [
    "%00", "a%00b", "%FF", "%C3%28", "..", "%2e%2e", "%2F", "a%2Fb", "x" * 3000, "%0d%0a", "9" * 30,
    "%F0%9F%98%80", "%20", "%25", "-1", ".", "%22%27%3C%3E",
]


# ----------------------------------------------------------------------------------------------
# Routes


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    binding: Binding

    @property
    def surface(self) -> str:
        return self.binding.surface

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def proto_names(self) -> bool:
        return self.surface == "templated"


def routes() -> list[Route]:
    return [Route(b.http_method, b.template, b) for b in ROUTE_TABLE.bindings]


# Path variables get ids that exist, so mutations of other fields reach the servicer; the fuzz
# never names the admin key (a fuzzed revoke must not lock the suite out) nor a built-in model.
def path_values(route: Route, ids: dict[str, str]) -> dict[str, str]:
    values = {}
    for var in parse_template(route.template).variables:
        if var == "key_id":
            values[var] = ids["key_id"]
        elif var == "account_id":
            values[var] = ids["account_id"]
        elif var == "chat.model":
            values[var] = "mock-chat"
        elif var == "model":  # Gemini's embedContent / batchEmbedContents
            values[var] = "mock-embed"
        elif route.method == "GET":
            values[var] = "mock-chat"
        else:
            values[var] = "fuzz-model"
    return values


def fill(template: str, values: dict[str, str], raw: dict[str, str] | None = None) -> str:
    """The request path: variables replaced by values (percent-encoded), or by raw text as is."""
    def sub(match: re.Match) -> str:
        name = match.group(1).split("=")[0]
        if raw and name in raw:
            return raw[name]
        return quote(values[name], safe="/" if "=**" in match.group(0) else "")

    return re.sub(r"\{([^}]+)\}", sub, template)


# ----------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    method: str
    path: str                      # raw request target path (already encoded)
    label: str                     # route + what was mutated, for failure messages
    route: str                     # "POST /v1/keys"
    field: str = ""                # the mutated field (surface name), "" for protocol cases
    query: list[tuple[str, str]] = dc_field(default_factory=list)
    body: bytes | None = None
    content_type: str | None = "application/json"
    key: bool = True
    surface: str = "default"

    @property
    def target(self) -> str:
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query)


@dataclass(frozen=True)
class FieldInfo:
    path: str
    field: FieldDescriptor


def walk_fields(descriptor: Descriptor, proto_names: bool, prefix: str = "", depth: int = 0) -> Iterator[FieldInfo]:
    for f in descriptor.fields:
        name = f.name if proto_names else f.json_name
        path = f"{prefix}{name}"
        yield FieldInfo(path, f)
        if (
            f.type == FieldDescriptor.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry
            and not f.message_type.full_name.startswith("google.") and depth < 2
        ):
            inner = f"{path}[0]." if f.is_repeated else f"{path}."
            yield from walk_fields(f.message_type, proto_names, inner, depth + 1)


def json_values(f: FieldDescriptor) -> list:
    """Values for one field of a JSON body: in-type extremes, wrong types, hostile text."""
    if f.is_repeated and not (f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry):
        return [["x"] * 3000, [None], "x", {}, [NASTY_STRINGS[1]], [Raw(b"1e999999")], [nested(30)], [[]]]
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        full = f.message_type.full_name
        if full == "google.protobuf.Timestamp":
            return TIMESTAMPS + WRONG_TYPES[:6]
        if full in ("google.protobuf.Struct", "google.protobuf.Value"):
            return [nested(60), nested(400), nested(400, "array"), {"\u0000": 1}, {"k": "\u0000"},
                    {"k": Raw(b"1e999999")}, {str(i): i for i in range(3000)}, "x", [], 1]
        if f.message_type.GetOptions().map_entry:
            return [[], "x", {"\u0000": "v"}, {"k": None}, {"k": nested(30)}]
        return WRONG_TYPES + [{"unknownField": 1}, nested(200)]
    if f.type == FieldDescriptor.TYPE_ENUM:
        return ENUM_VALUES + WRONG_TYPES[:4]
    if f.type == FieldDescriptor.TYPE_BOOL:
        return ["true", 1, 0, None, [], {}, "\u0000"]
    if f.type == FieldDescriptor.TYPE_STRING:
        return NASTY_STRINGS + WRONG_TYPES[:6] + HUGE_NUMBERS[:4]
    if f.type == FieldDescriptor.TYPE_BYTES:
        return ["!!!", "\u0000", "a", 1, [], Raw(b'"\xff"')]
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return HUGE_NUMBERS + ["NaN", "Infinity", "-Infinity", "abc", "1e999999", True, [], None]
    # every integer type
    return HUGE_NUMBERS + [str(v) for v in HUGE_NUMBERS[:8]] + ["9" * 30, "1e30", "abc", "", "0x10", True, [], {}, None]


def _pick(rng: random.Random, candidates: list[tuple[str, object]], budget: int) -> list[tuple[str, object]]:
    """At least one value for every field (round-robin over fields in seeded order), up to budget."""
    by_field: dict[str, list] = {}
    for name, value in candidates:
        by_field.setdefault(name, []).append(value)
    for values in by_field.values():
        rng.shuffle(values)
    names = list(by_field)
    rng.shuffle(names)
    out: list[tuple[str, object]] = []
    limit = max(budget, len(names))
    while len(out) < limit and any(by_field.values()):
        for name in names:
            if by_field[name] and len(out) < limit:
                out.append((name, by_field[name].pop()))
    return out


def set_path(body, path: str, value):
    """A copy of `body` with the field at dotted `path` ("a.b[0].c") set to value (None path: whole body)."""
    import copy

    body = copy.deepcopy(body)
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node = body
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        key: object = int(part[1:-1]) if part.startswith("[") else part
        if last:
            node[key] = value
            return body
        if isinstance(key, int):
            while len(node) <= key:
                node.append({})
        else:
            if not isinstance(node.get(key), (dict, list)):
                node[key] = [] if parts[i + 1].startswith("[") else {}
        node = node[key]
    return body


def leaf_paths(value, prefix: str = "") -> Iterator[str]:
    """Every key and index in a JSON document, as dotted paths."""
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from leaf_paths(v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            path = f"{prefix}[{i}]"
            yield path
            yield from leaf_paths(v, path)


ANY_JSON = NASTY_STRINGS + WRONG_TYPES + HUGE_NUMBERS + [nested(300), nested(300, "array")]


def generic_cases(route: Route, ids: dict[str, str], rng: random.Random, budget: int) -> list[Case]:
    """Descriptor-driven: body fields (body "*"/field), query parameters (no body), path variables."""
    b = route.binding
    values = path_values(route, ids)
    path = fill(route.template, values)
    base = dict(method=route.method, route=route.id, surface=route.surface)
    candidates: list[tuple[str, object]] = []
    bound = set(values)
    descriptor = b.request_class.DESCRIPTOR
    if b.body == "*":
        for info in walk_fields(descriptor, route.proto_names):
            if info.path.split(".")[0].split("[")[0] not in {_name(descriptor, v, route.proto_names) for v in bound}:
                candidates += [(info.path, v) for v in json_values(info.field)]
        candidates += [("unknownField", 1), ("n", 1)]
    baseline = BASELINES.get(route.id, {})
    cases = []
    for name, value in _pick(rng, candidates, budget):
        body = set_path(_without_oneof_siblings(baseline, descriptor, name, route.proto_names), name, value)
        cases.append(Case(path=path, label=f"{route.id} body {name}={value!r:.60}", field=name, body=dumps(body), **base))
    if not b.body and route.method in ("GET", "DELETE"):
        qcands = []
        for info in walk_fields(descriptor, route.proto_names):
            if "[" in info.path or info.path in {_name(descriptor, v, route.proto_names) for v in bound}:
                continue
            if info.field.type == FieldDescriptor.TYPE_MESSAGE and info.field.message_type.full_name != "google.protobuf.Timestamp":
                continue
            qcands += [(info.path, v) for v in QUERY_VALUES]
        qcands += [("unknown", "1"), ("a\x00b", "1"), ("pageToken.x", "1")]
        for name, value in _pick(rng, qcands, budget):
            cases.append(Case(path=path, label=f"{route.id} ?{name}={value!r:.60}", field=name, query=[(name, value)],
                              body=None, content_type=None, **base))
        if any(i.path in ("pageToken", "page_token") for i in walk_fields(descriptor, route.proto_names)):
            name = "page_token" if route.proto_names else "pageToken"
            cases.append(Case(path=path, label=f"{route.id} ?{name}=<base64 of thirty 9s>", field=name, body=None,
                              query=[(name, base64.urlsafe_b64encode(b"9" * 30).decode())], content_type=None, **base))
    cases += path_cases(route, ids, rng)
    return cases


def _without_oneof_siblings(baseline: dict, descriptor: Descriptor, name: str, proto_names: bool) -> dict:
    """The baseline minus the other members of the mutated field's oneof (else every case is a conflict)."""
    f = next((f for f in descriptor.fields if name in (f.name, f.json_name)), None)
    if f is None or f.containing_oneof is None:
        return baseline
    siblings = {n for s in f.containing_oneof.fields if s is not f for n in (s.name, s.json_name)}
    return {k: v for k, v in baseline.items() if k not in siblings}


def _name(descriptor: Descriptor, var: str, proto_names: bool) -> str:
    f = descriptor.fields_by_name.get(var.split(".")[0])
    return var if f is None else (f.name if proto_names else f.json_name)


def path_cases(route: Route, ids: dict[str, str], rng: random.Random) -> list[Case]:
    values = path_values(route, ids)
    cases = []
    body = dumps(BASELINES.get(route.id, {})) if route.binding.body else None
    for var in values:
        for raw in rng.sample(PATH_VALUES, min(8, len(PATH_VALUES))):
            cases.append(Case(method=route.method, path=fill(route.template, values, {var: raw}), route=route.id,
                              label=f"{route.id} path {var}={raw[:40]!r}", field=var, body=body, surface=route.surface))
    return cases


def vendor_cases(route: Route, ids: dict[str, str], rng: random.Random, budget: int) -> list[Case]:
    """Every key and index of a documented vendor request body, replaced by hostile values."""
    baseline = VENDOR_BODIES[route.template]
    path = fill(route.template, path_values(route, ids))
    candidates = [(p, v) for p in leaf_paths(baseline) for v in ANY_JSON]
    candidates += [(k, v) for k in ("unknown_param", "\u0000") for v in ("x", nested(100))]
    cases = []
    for name, value in _pick(rng, candidates, budget):
        cases.append(Case(method=route.method, path=path, route=route.id, field=name, surface=route.surface,
                          label=f"{route.id} body {name}={value!r:.60}", body=dumps(set_path(baseline, name, value))))
    return cases + path_cases(route, ids, rng)


def multipart(fields: list[tuple[str, str | bytes]], files: list[tuple[str, str, str, bytes]], boundary="fuzzbound"):
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
        out += value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        out += b"\r\n"
    for name, filename, ctype, data in files:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n".encode("utf-8", "surrogatepass")
        out += f"Content-Type: {ctype}\r\n\r\n".encode("utf-8", "surrogatepass") + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


MULTIPART_TEXT = ["", "\x00", "a\x00b", "x" * 20_000, "9" * 30, "-1", "1e999999", "NaN", "abc", "\r\n", b"\xff\xfe", "😀", "[]"]


def multipart_cases(route: Route, rng: random.Random, budget: int) -> list[Case]:
    fields, files = MULTIPART_FORMS[route.template]
    base = dict(method=route.method, path=route.template, route=route.id, surface=route.surface,
                content_type="multipart/form-data; boundary=fuzzbound")
    candidates = [(f"field {name}", (i, v)) for i, (name, _) in enumerate(fields) for v in MULTIPART_TEXT]
    candidates += [(f"file {name}", (i, v)) for i, (name, *_rest) in enumerate(files)
                   for v in ["drop", "empty", "\x00name", "a" * 5000, "ctype", "\r\nX-Injected: 1", "huge-wav-header"]]
    candidates += [("unknown field", (0, "x")), ("repeat fields", (0, "x"))]
    cases = []
    for name, (i, v) in _pick(rng, candidates, budget):
        f2, fl2 = list(fields), list(files)
        if name.startswith("field "):
            f2[i] = (f2[i][0], v if isinstance(v, bytes) else v)
        elif name.startswith("file "):
            fname, filename, ctype, data = fl2[i]
            if v == "drop":
                fl2.pop(i)
            elif v == "empty":
                fl2[i] = (fname, filename, ctype, b"")
            elif v == "ctype":
                fl2[i] = (fname, filename, "\x00/\x00", data)
            elif v == "huge-wav-header":
                fl2[i] = (fname, "a.wav", "audio/wav", b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00"
                          b"\x00\x00\x00\x00\x02\x00\x10\x00data\xff\xff\xff\xff")
            else:
                fl2[i] = (fname, v, ctype, data)
        elif name == "unknown field":
            f2.append(("unknown_param", "x"))
        else:
            f2 = f2 + f2
        label = f"{route.id} multipart {name}={v!r:.60}"
        field_name = name.split(" ", 1)[1] if " " in name else name
        cases.append(Case(label=label, field=field_name, body=multipart(f2, fl2), **base))
    return cases


def protocol_cases(route: Route, ids: dict[str, str]) -> list[Case]:
    """The same for every binding: bodies that are not JSON objects, wrong content types, odd methods, no key."""
    path = fill(route.template, path_values(route, ids))
    base = dict(path=path, route=route.id, surface=route.surface)
    cases = [
        Case(method=route.method, label=f"{route.id} without a key", key=False,
             body=dumps(BASELINES.get(route.id, VENDOR_BODIES.get(route.template, {}))), **base),
    ]
    for method in ("TRACE", "PATCH", "OPTIONS", "PUT", "FOO"):
        if method != route.method:
            cases.append(Case(method=method, label=f"{route.id} as {method}", body=None, content_type=None, **base))
    if route.binding.body:
        for body, ctype in [
            (b"{", "application/json"), (b"[]", "application/json"), (b'"x"', "application/json"), (b"null", "application/json"),
            (b"1e999999", "application/json"), (b'{"a":"\xff"}', "application/json"), (b"\xef\xbb\xbf{}", "application/json"),
            (b"[" * 5000, "application/json"), (dumps(nested(1000)), "application/json"), (b"{}", "text/plain"),
            (b"a=1", "application/x-www-form-urlencoded"), (b"--x\r\n", "multipart/form-data; boundary=x"),
            (b"--x--\r\n", "multipart/form-data"), (b"{}", None), (b"{}", "application/json; charset=latin-1"),
            (b'{"a":1,"a":2}', "application/json"), (b"\x00" * 100, "application/octet-stream"),
        ]:
            cases.append(Case(method=route.method, label=f"{route.id} body {body[:30]!r} as {ctype}", body=body,
                              content_type=ctype, **base))
    return cases


def route_cases(route: Route, ids: dict[str, str], budget: int = FUZZ_EXAMPLES) -> list[Case]:
    rng = random.Random(f"{SEED}:{route.id}")
    if route.template in MULTIPART_FORMS:
        cases = multipart_cases(route, rng, budget)
    elif route.template in VENDOR_BODIES:
        cases = vendor_cases(route, ids, rng, budget)
    else:
        cases = generic_cases(route, ids, rng, budget)
    return cases + protocol_cases(route, ids)


# ----------------------------------------------------------------------------------------------
# Baselines: a valid request per route, so that one mutated field is what the gateway judges.

BASELINES: dict[str, dict] = {
    "POST /v1/keys": {"name": "fuzz", "scopes": ["inference"], "rateLimitPerMinute": 60, "expireTime": "2099-01-01T00:00:00Z",
                      "allowedModels": ["mock-chat"]},
    "POST /v1/accounts": {"name": "fuzz account"},
    "POST /v1/accounts/{account_id}/wallet:topup": {"amountUsd": "0.01", "note": "fuzz"},
    "POST /v1/keys/{key_id}:setSpendCap": {"spendCapUsd": "5"},
    "POST /api/v1/generate": {"prompt": "a barista", "template": "bio-instagram", "options": {"tone": "witty"}, "max_tokens": 20},
}

_CHAT_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Hi"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                           "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
]
_TOOLS = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": False}}]

VENDOR_BODIES: dict[str, dict] = {
    "/v1/chat/completions": {
        "model": "mock-chat", "messages": _CHAT_MESSAGES, "max_tokens": 16, "max_completion_tokens": 16, "temperature": 0.5,
        "top_p": 1, "stop": ["x"], "n": 1, "seed": 7, "user": "u", "presence_penalty": 0, "frequency_penalty": 0,
        "tools": _TOOLS, "tool_choice": "auto", "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
        "stream": False, "stream_options": {"include_usage": True}, "logit_bias": {"1": 1},
    },
    "/v1/messages": {
        "model": "mock-chat", "max_tokens": 16, "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                  {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}],
        "stop_sequences": ["x"], "temperature": 0.5, "top_p": 1, "metadata": {"user_id": "u"},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"}, "stream": False,
    },
    "/v1beta/models/{chat.model}:generateContent": {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                     {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                     {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"x": 1}}}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.5, "topP": 1, "maxOutputTokens": 16, "stopSequences": ["x"], "candidateCount": 1,
                             "seed": 7, "responseMimeType": "text/plain"},
        "tools": [{"functionDeclarations": [{"name": "f", "description": "d", "parameters": {"type": "OBJECT"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    },
    "/v1/responses": {
        "model": "mock-chat", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                                        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                                        {"type": "function_call_output", "call_id": "c1", "output": "42"}],
        "instructions": "Be brief.", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": "auto", "max_output_tokens": 16, "temperature": 0.5, "top_p": 1,
        "text": {"format": {"type": "text"}, "verbosity": "low"}, "reasoning": {"effort": "low"}, "stream": False, "user": "u",
        "metadata": {"k": "v"},
    },
    "/v1/embeddings": {"model": "mock-embed", "input": ["a", "b"], "dimensions": 8, "user": "u", "encoding_format": "float"},
    "/v1/rerank": {"model": "mock-rerank", "query": "q", "documents": ["a", "b"], "top_n": 1, "return_documents": True},
    "/v1/images/generations": {"model": "mock-image", "prompt": "a cat", "n": 1, "size": "256x256", "response_format": "b64_json", "user": "u"},
    "/v1/audio/speech": {"model": "mock-speech", "input": "hello", "voice": "alloy", "response_format": "mp3", "speed": 1.0},
    "/v1/admin/models/{model.id=**}": {
        "mode": "chat", "context_window": 1000, "max_output_tokens": 100,
        "pricing": {"input_usd_per_million_tokens": "0.15", "output_usd_per_million_tokens": "0.60"},
        "deployments": [{"provider": "mock", "upstream_model": "mock", "priority": 0, "weight": 1}],
    },
}
VENDOR_BODIES["/v1beta/models/{chat.model}:streamGenerateContent"] = VENDOR_BODIES["/v1beta/models/{chat.model}:generateContent"]
VENDOR_BODIES["/v1/responses/compact"] = VENDOR_BODIES["/v1/responses"]
VENDOR_BODIES["/v1/messages/count_tokens"] = {k: v for k, v in VENDOR_BODIES["/v1/messages"].items() if k not in ("max_tokens", "stream")}
VENDOR_BODIES["/v1beta/models/{chat.model}:countTokens"] = {"contents": VENDOR_BODIES["/v1beta/models/{chat.model}:generateContent"]["contents"]}
VENDOR_BODIES["/v1beta/models/{model}:embedContent"] = {"content": {"parts": [{"text": "Hi"}]}, "taskType": "RETRIEVAL_QUERY",
                                                        "outputDimensionality": 8}
VENDOR_BODIES["/v1beta/models/{model}:batchEmbedContents"] = {"requests": [
    {"model": "models/mock-embed", "content": {"parts": [{"text": "a"}]}}, {"model": "models/mock-embed", "content": {"parts": [{"text": "b"}]}},
]}

_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
_WAV = (b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00"
        b"data\x00\x00\x00\x00")
MULTIPART_FORMS = {
    "/v1/images/edits": ([("model", "mock-image"), ("prompt", "a hat"), ("n", "1"), ("size", "256x256"),
                          ("response_format", "b64_json"), ("user", "u")],
                         [("image", "a.png", "image/png", _PNG), ("mask", "m.png", "image/png", _PNG)]),
    "/v1/images/variations": ([("model", "mock-image"), ("n", "1"), ("size", "256x256"), ("response_format", "b64_json")],
                              [("image", "a.png", "image/png", _PNG)]),
    "/v1/audio/transcriptions": ([("model", "mock-transcribe"), ("prompt", "p"), ("language", "en"), ("temperature", "0"),
                                  ("response_format", "verbose_json"), ("timestamp_granularities[]", "word")],
                                 [("file", "a.wav", "audio/wav", _WAV)]),
    "/v1/audio/translations": ([("model", "mock-transcribe"), ("prompt", "p"), ("temperature", "0"), ("response_format", "json")],
                               [("file", "a.wav", "audio/wav", _WAV)]),
}


# ----------------------------------------------------------------------------------------------
# Judging answers

# Words that only come from inside the gateway: proto packages, the protobuf runtime, Python.
LEAKS = re.compile(
    r"Traceback|File \"|switchyard\.(?!gateway)|Message type|google\.protobuf|json_format|<class|NoneType|"
    r"psycopg|sqlalchemy|sqlite3|asyncpg|orjson|\b[A-Z][A-Za-z]*(?:Error|Exception)\b"
)
_ID_KEY = {"default": ("error", "requestId"), "templated": ("error", "request_id"), "anthropic": ("request_id",)}


def shape_problems(surface: str, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    """What is wrong with an error answer: its status, content type, body shape, request id or words."""
    import orjson

    problems = []
    if status >= 500:
        problems.append(f"status {status}")
    ctype = headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        return problems + [f"content-type {ctype!r}: {body[:120]!r}"]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return problems + [f"not JSON: {body[:120]!r}"]
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return problems + [f"no error object: {body[:200]!r}"]
    if surface == "default":
        if set(error) != {"code", "message", "status", "requestId", "type", "param"} or error["status"] != status:
            problems.append(f"not the default error shape: {doc}")
    elif surface == "anthropic":
        if doc.get("type") != "error" or set(error) != {"type", "message"}:
            problems.append(f"not Anthropic's error shape: {doc}")
    elif surface == "gemini":
        if error.get("code") != status or not isinstance(error.get("status"), str):
            problems.append(f"not Gemini's error shape: {doc}")
    elif surface == "templated":
        if doc.get("success") is not False or not {"code", "message", "request_id"} <= set(error):
            problems.append(f"not the templated error shape: {doc}")
    request_id = headers.get("x-request-id")
    if not request_id:
        problems.append("no X-Request-Id")
    elif surface in _ID_KEY:
        node = doc
        for k in _ID_KEY[surface]:
            node = node.get(k) if isinstance(node, dict) else None
        if node != request_id:
            problems.append(f"request id {node!r} != header {request_id!r}")
    if m := LEAKS.search(error["message"]):
        problems.append(f"internal detail {m.group(0)!r} in message {error['message'][:300]!r}")
    return problems


def answer_problems(surface: str, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    if status < 400:
        if b"internal_error" in body or b"Internal error" in body:
            return ["an internal error inside a successful answer (stream error event)"]
        return []
    return shape_problems(surface, status, headers, body)


# ----------------------------------------------------------------------------------------------
# A raw HTTP/1.1 client, for bytes no well-behaved client library will send.


def raw_request(host: str, port: int, request: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is on a new connection; the parsed answer (status 0 if the server just closed)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may answer and close before it has read everything
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if headers.get("transfer-encoding") == "chunked":
        out, rest = bytearray(), body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        body = bytes(out)
    return status, headers, body


# ----------------------------------------------------------------------------------------------
# The gateway under fuzz: one per database for a whole module.


def start_fuzzed_gateway(tmp_path, database_url: str | None):
    """A gateway with a generous rate limit, plus ids the fuzz may target: a spare key, an account."""
    import requests

    from tests.harness import ThreadGateway, make_settings

    extra = {"database_url": database_url} if database_url else {}
    gw = ThreadGateway(make_settings(tmp_path, limits={"default_rate_limit_per_minute": 1_000_000}, **extra)).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {gw.admin_key}"
    key = session.post(f"{gw.url}/v1/keys", json={"name": "fuzz target"}, timeout=10)
    key.raise_for_status()
    account = session.post(f"{gw.url}/v1/accounts", json={"name": "fuzz", "accountId": "acct_fuzz"}, timeout=10)
    account.raise_for_status()
    # Top-ups go to acct_fuzz, so the admin's own wallet (read by most routes) stays sane.
    return gw, {"key_id": key.json()["apiKey"]["id"], "account_id": "acct_fuzz"}


def fuzzed_gateway_fixture():
    import pytest

    from tests import services

    @pytest.fixture(scope="module", params=["sqlite", "postgresql"])
    def fuzzed(request, tmp_path_factory):
        tmp = tmp_path_factory.mktemp("fuzz")
        if request.param == "postgresql":
            with services.postgres_database() as url:
                gw, ids = start_fuzzed_gateway(tmp, url)
                yield gw, ids
                gw.stop()
        else:
            gw, ids = start_fuzzed_gateway(tmp, None)
            yield gw, ids
            gw.stop()

    return fuzzed


# ----------------------------------------------------------------------------------------------
# gRPC: request messages mutated within what the wire format can carry, plus bytes that are no
# valid message at all.


@dataclass(frozen=True)
class GrpcMethod:
    path: str
    request_class: type
    server_streaming: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


def grpc_methods() -> list[GrpcMethod]:
    from google.protobuf import message_factory

    return [
        GrpcMethod(f"/{s.full_name}/{m.name}", message_factory.GetMessageClass(m.input_type), m.server_streaming)
        for s in service_descriptors() for m in s.methods
    ]


@dataclass
class GrpcCase:
    label: str
    field: str
    data: bytes
    key: bool = True


GRPC_BASELINES: dict[str, dict] = {
    "CreateKey": {"name": "fuzz", "scopes": ["inference"], "rate_limit_per_minute": 60, "allowed_models": ["mock-chat"],
                  "expire_time": "2099-01-01T00:00:00Z"},
    "CreateAccount": {"name": "fuzz"},
    "TopUpWallet": {"account_id": "acct_fuzz", "amount_usd": "0.01", "note": "n"},
    "SetKeySpendCap": {"spend_cap_usd": "1"},
    "CreateChatCompletion": {"chat": {"model": "mock-chat", "messages": [{"role": "user", "text": "Hi", "parts": [{"text": "p"}]}],
                                      "max_tokens": 8, "tools": [{"type": "function", "function": {"name": "f", "parameters_json": "e30="}}],
                                      "tool_choice": {"mode": "auto"}, "response_format": {"type": "text"}}},
    "CreateEmbeddings": {"model": "mock-embed", "input": ["a"]},
    "Rerank": {"model": "mock-rerank", "query": "q", "documents": ["a"]},
    "CreateImage": {"model": "mock-image", "prompt": "p", "n": 1},
    "CreateSpeech": {"model": "mock-speech", "input": "hi", "voice": "alloy"},
    "CreateImageEdit": {"model": "mock-image", "prompt": "p", "images": [{"filename": "a.png", "content_type": "image/png", "data": base64.b64encode(_PNG).decode()}]},
    "CreateImageVariation": {"model": "mock-image", "image": {"filename": "a.png", "content_type": "image/png", "data": base64.b64encode(_PNG).decode()}},
    "CreateTranscription": {"model": "mock-transcribe", "file": {"filename": "a.wav", "content_type": "audio/wav", "data": base64.b64encode(_WAV).decode()}},
    "GetModel": {"model_id": "mock-chat"},
    "PutModel": {"model": {"id": "fuzz-model", "mode": "chat", "deployments": [{"provider": "mock", "upstream_model": "mock"}]}},
    "DeleteModel": {"model_id": "fuzz-model"},
    "Generate": {"prompt": "a barista", "template": "bio-instagram", "options": {"tone": "witty"}, "max_tokens": 20},
    "ListGenerationLogs": {"limit": 10},
}

_TS_EXTREMES = [(2**62, 0), (-(2**62), 0), (253402300800, 0), (-62135596801, 0), (0, -1), (0, 10**9), (0, 2**31 - 1), (2**63 - 1, 0)]


def grpc_values(f: FieldDescriptor) -> list:
    from google.protobuf import struct_pb2, timestamp_pb2

    t = f.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        full = f.message_type.full_name
        if full == "google.protobuf.Timestamp":
            return [timestamp_pb2.Timestamp(seconds=s, nanos=n) for s, n in _TS_EXTREMES]
        if full == "google.protobuf.Struct":
            deep = struct_pb2.Struct()
            node = deep
            for _ in range(60):
                node = node.fields["a"].struct_value
            return [deep, struct_pb2.Struct(fields={"\x00": struct_pb2.Value(string_value="\x00")}),
                    struct_pb2.Struct(fields={"k": struct_pb2.Value(number_value=float("inf"))})]
        if full == "google.protobuf.Value":
            return [struct_pb2.Value(string_value="\x00"), struct_pb2.Value(number_value=float("nan"))]
        return ["empty"]
    if t == FieldDescriptor.TYPE_STRING:
        return ["\x00", "a\x00b", "x" * 100_000, "😀", "", "9" * 30, "9999-12-31", "../..", "\r\n"]
    if t == FieldDescriptor.TYPE_BYTES:
        return [b"\xff\xfe", b"[]", b"{", b"null", b'{"a":' * 300, b"\x00", b"1e999999", b'"x"']
    if t == FieldDescriptor.TYPE_BOOL:
        return [True]
    if t == FieldDescriptor.TYPE_ENUM:
        return [-1, 999, 2**31 - 1]
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return [float("inf"), float("-inf"), float("nan"), 1e308, -1e308, -0.0]
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return [2**32 - 1]
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return [2**64 - 1]
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return [-(2**31), 2**31 - 1, -1]
    return [INT64_MIN, INT64_MAX, -1, 2**53 + 1]


def _grpc_field_chains(descriptor: Descriptor, prefix=(), depth=0):
    for f in descriptor.fields:
        chain = prefix + (f,)
        yield chain
        if (f.type == FieldDescriptor.TYPE_MESSAGE and not f.message_type.GetOptions().map_entry
                and not f.message_type.full_name.startswith("google.") and depth < 3):
            yield from _grpc_field_chains(f.message_type, chain, depth + 1)


def _set_chain(message, chain, value) -> None:
    node = message
    for f in chain[:-1]:
        if f.is_repeated:
            container = getattr(node, f.name)
            node = container[0] if len(container) else container.add()
        else:
            node = getattr(node, f.name)
    last = chain[-1]
    if last.type == FieldDescriptor.TYPE_MESSAGE and last.message_type.GetOptions().map_entry:
        target = getattr(node, last.name)
        value_field = last.message_type.fields_by_name["value"]
        key = "\x00" if last.message_type.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING else -1
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            target[key].SetInParent()
        else:
            target[key] = value if not isinstance(value, str) or value_field.type == FieldDescriptor.TYPE_STRING else 0
        return
    if last.is_repeated:
        container = getattr(node, last.name)
        if last.type == FieldDescriptor.TYPE_MESSAGE:
            for _ in range(200):
                item = container.add()
                if value != "empty":
                    item.CopyFrom(value)
        else:
            container.extend([value] * 1000)
        return
    if last.type == FieldDescriptor.TYPE_MESSAGE:
        sub = getattr(node, last.name)
        if value == "empty":
            sub.SetInParent()
        else:
            sub.CopyFrom(value)
        return
    setattr(node, last.name, value)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def grpc_cases(method: GrpcMethod, ids: dict[str, str], budget: int = FUZZ_EXAMPLES) -> list[GrpcCase]:
    from google.protobuf import json_format

    rng = random.Random(f"{SEED}:grpc:{method.path}")
    baseline = method.request_class()
    data = dict(GRPC_BASELINES.get(method.name, {}))
    if "key_id" in method.request_class.DESCRIPTOR.fields_by_name:
        data.setdefault("key_id", ids["key_id"])
    json_format.ParseDict(data, baseline)
    candidates = []
    for chain in _grpc_field_chains(method.request_class.DESCRIPTOR):
        name = ".".join(f.name for f in chain)
        candidates += [(name, (chain, v)) for v in grpc_values(chain[-1])]
    cases = []
    for name, (chain, value) in _pick(rng, candidates, budget):
        message = method.request_class()
        message.CopyFrom(baseline)
        if chain[-1].containing_oneof is not None and len(chain) == 1:
            message.ClearField(chain[-1].containing_oneof.name)
        try:
            _set_chain(message, chain, value)
        except (ValueError, TypeError):
            continue  # not representable in this field (the runtime refuses it client-side)
        cases.append(GrpcCase(f"{method.name} {name}={value!r:.60}", name, message.SerializeToString()))
    wire = baseline.SerializeToString()
    for f in method.request_class.DESCRIPTOR.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            # The last value wins for a singular field: invalid UTF-8 no Python client can set.
            bad = _varint(f.number << 3 | 2) + _varint(2) + b"\xff\xfe"
            cases.append(GrpcCase(f"{method.name} {f.name}=<invalid UTF-8>", f.name, wire + bad))
    cases += [
        GrpcCase(f"{method.name} <garbage>", "", b"\xff" * 16),
        GrpcCase(f"{method.name} <truncated>", "", wire[:-1] if len(wire) > 1 else b"\x0a\x05ab"),
        GrpcCase(f"{method.name} <length beyond the end>", "", b"\x0a" + _varint(2**31)),
        GrpcCase(f"{method.name} <unknown field>", "", wire + _varint(999 << 3 | 0) + b"\x01"),
        GrpcCase(f"{method.name} <no key>", "", wire, key=False),
    ]
    return cases


def grpc_problems(code, details: str | None) -> list[str]:
    import grpc

    problems = []
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        problems.append(f"{code.name}: {details!r:.200}")
    if details and (m := LEAKS.search(details)):
        problems.append(f"internal detail {m.group(0)!r} in {details[:200]!r}")
    return problems


# ----------------------------------------------------------------------------------------------
# Running a sweep


def sweep(cases: list, problems_of) -> None:
    """Run every case; fail with the first few problems found, if any."""
    failures = [f"{case.label}: {'; '.join(problems)}" for case in cases if (problems := problems_of(case))]
    assert not failures, f"{len(failures)} of {len(cases)} fuzzed requests failed:\n" + "\n".join(failures[:40])
