"""HttpRule path templates (google/api/http.proto): parsing and request-path matching.

Pure standard library on purpose: the REST edge builds its routing table from the
`google.api.http` annotations at start-up and consults it on every request, and this
module is the part of that which can be tested without Starlette or protobuf.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

__all__ = [
    "DOUBLE_STAR",
    "LITERAL",
    "STAR",
    "Match",
    "MethodNotAllowed",
    "PathMatcher",
    "PathTemplate",
    "Segment",
    "TemplateError",
    "parse_template",
]

LITERAL = "literal"
STAR = "*"
DOUBLE_STAR = "**"

# Lower rank = more specific; templates compare by their per-segment ranks.
_RANK = {LITERAL: 0, STAR: 1, DOUBLE_STAR: 2}

# RFC 3986 pchar without the characters the template syntax gives a meaning to
# ("*", "=", ":", "{", "}") and without "%": template literals are matched against
# *decoded* request segments, so an escape in a template would be ambiguous.
_LITERAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()+,;@")
_IDENT_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")
# RFC 9110 token, so custom HttpRule kinds are accepted but garbage is not.
_METHOD_CHARS = _IDENT_CHARS | frozenset("!#$%&'*+-.^`|~")


class TemplateError(ValueError):
    """An HttpRule path template is malformed, or a route is registered twice."""


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str                     # LITERAL, STAR or DOUBLE_STAR
    literal: str = ""             # only for LITERAL
    variable: str | None = None   # field path of the enclosing variable, if any


@dataclass(frozen=True, slots=True)
class _Binding:
    name: str
    start: int
    stop: int | None    # None: up to the end of the path (the variable ends in "**")
    multi: bool         # decides whether %2F is decoded (single) or kept (multi)


@dataclass(frozen=True)
class PathTemplate:
    """A parsed template; build it with parse_template(), which fills the derived fields."""

    template: str
    segments: tuple[Segment, ...]
    verb: str | None
    variables: tuple[str, ...]
    specificity: tuple[int, ...]
    _bindings: tuple[_Binding, ...] = field(repr=False)

    def __str__(self) -> str:
        return self.template

    @property
    def _tail_min(self) -> int:
        """Segments the trailing "**" needs: 1 inside a variable, 0 when bare.

        A bare "**" binds nothing, so letting it match nothing lets `/v1/files/**`
        cover `/v1/files` too. A variable must not end up with an empty value for
        a resource name (`{name=**}` matching zero segments would bind "" and the
        service would see a missing field rather than a 404), so there it is
        one-or-more.
        """
        last = self.segments[-1]
        if last.kind != DOUBLE_STAR:
            return 0
        return 0 if last.variable is None else 1

    def match(self, segments: list[str], verb: str | None) -> dict[str, str] | None:
        """Match raw (still percent-encoded) path segments and a raw verb.

        `segments` is the request path split on "/" without the leading empty part,
        with the verb already removed from the last segment. Returns the bound
        variables (field path -> decoded value) or None.
        """
        if (verb is None) != (self.verb is None):
            return None
        if verb is not None and _decode(verb) != self.verb:
            return None
        path = _Path.from_raw(segments)
        if path is None or not self._fits(path.decoded):
            return None
        return self._bind(path)

    def _fits(self, decoded: list[str]) -> bool:
        segs = self.segments
        if segs[-1].kind == DOUBLE_STAR:
            fixed = segs[:-1]
            if len(decoded) < len(fixed) + self._tail_min:
                return False
        else:
            fixed = segs
            if len(decoded) != len(fixed):
                return False
        for seg, text in zip(fixed, decoded):
            if seg.kind == LITERAL and seg.literal != text:
                return False
        return True

    def _bind(self, path: _Path) -> dict[str, str]:
        params: dict[str, str] = {}
        for b in self._bindings:
            if not b.multi:
                params[b.name] = path.decoded[b.start]
            else:
                stop = len(path.raw) if b.stop is None else b.stop
                params[b.name] = "/".join(_decode_keep_slash(path.raw[i]) for i in range(b.start, stop))
        return params


# ---------------------------------------------------------------------------
# Parsing


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.names: set[str] = set()

    def fail(self, reason: str, pos: int | None = None) -> TemplateError:
        at = self.pos if pos is None else pos
        return TemplateError(f"invalid HttpRule path template {self.text!r}: {reason} (at offset {at})")

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def template(self) -> tuple[list[Segment], str | None]:
        if self.peek() != "/":
            raise self.fail("a template must start with '/'")
        self.pos += 1
        segments = self.segments(None)
        verb = None
        if self.peek() == ":":
            self.pos += 1
            verb = self.literal()
            if not verb:
                raise self.fail("empty verb after ':'")
        if self.peek() is not None:
            if self.peek() == ":" or verb is not None:
                raise self.fail("the ':verb' must be the last part of the template")
            raise self.fail(f"unexpected {self.peek()!r}")
        return segments, verb

    def segments(self, variable: str | None) -> list[Segment]:
        out: list[Segment] = []
        while True:
            out.extend(self.segment(variable))
            if self.peek() != "/":
                return out
            self.pos += 1

    def segment(self, variable: str | None) -> list[Segment]:
        c = self.peek()
        if c == "{":
            if variable is not None:
                raise self.fail(f"nested variable inside {{{variable}}}; variables do not nest")
            segs = self.variable()
            what = "variable"
        elif c == "*":
            self.pos += 1
            kind = STAR
            if self.peek() == "*":
                self.pos += 1
                kind = DOUBLE_STAR
            segs = [Segment(kind, variable=variable)]
            what = "wildcard"
        elif c is not None and c in _LITERAL_CHARS:
            segs = [Segment(LITERAL, self.literal(), variable)]
            what = "literal"
        elif c in (None, "/", ":") or (c == "}" and variable is not None):
            raise self.fail("empty segment")
        elif c == "}":
            raise self.fail("unbalanced '}'")
        else:
            raise self.fail(f"invalid character {c!r} in a path segment")

        t = self.peek()
        if t is None or t == "/" or (t == ":" and variable is None) or (t == "}" and variable is not None):
            return segs
        if t == ":":
            raise self.fail(f"':' is not allowed inside the variable {{{variable}}}")
        if t == "}":
            raise self.fail("unbalanced '}'")
        if what == "wildcard" or t == "*":
            raise self.fail("'*' and '**' must be a whole segment")
        if what == "variable" or t == "{":
            raise self.fail("a variable must be a whole segment")
        raise self.fail(f"invalid character {t!r} in a path segment")

    def literal(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _LITERAL_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def variable(self) -> list[Segment]:
        open_at = self.pos
        self.pos += 1
        name = self.field_path()
        if name in self.names:
            raise self.fail(f"variable {name!r} appears twice", open_at)
        self.names.add(name)
        if self.peek() == "=":
            self.pos += 1
            inner = self.segments(name)
        else:
            inner = [Segment(STAR, variable=name)]
        if self.peek() is None:
            raise self.fail("unbalanced '{': the variable is never closed", open_at)
        if self.peek() != "}":
            raise self.fail(f"unexpected {self.peek()!r} in variable {name!r}")
        self.pos += 1
        return inner

    def field_path(self) -> str:
        start = self.pos
        while True:
            if self.peek() not in _IDENT_START:
                what = "end of template" if self.peek() is None else repr(self.peek())
                raise self.fail(f"expected a field name (identifier), found {what}")
            while self.peek() is not None and self.peek() in _IDENT_CHARS:
                self.pos += 1
            if self.peek() != ".":
                return self.text[start:self.pos]
            self.pos += 1


def parse_template(template: str) -> PathTemplate:
    """Parse an HttpRule path template; raise TemplateError if it is malformed."""
    if not isinstance(template, str):
        raise TemplateError(f"an HttpRule path template must be a str, not {type(template).__name__}")
    parser = _Parser(template)
    segments, verb = parser.template()

    for i, seg in enumerate(segments[:-1]):
        if seg.kind == DOUBLE_STAR:
            raise TemplateError(f"invalid HttpRule path template {template!r}: '**' must be the last segment (segment {i + 1})")

    # The parser rejects duplicate names, so a variable is exactly a run of
    # consecutive segments carrying its name.
    bindings: list[_Binding] = []
    i = 0
    while i < len(segments):
        name = segments[i].variable
        if name is None:
            i += 1
            continue
        j = i
        while j < len(segments) and segments[j].variable == name:
            j += 1
        # "Single segment" is a property of the template, not of what it matched:
        # {x=**} keeps %2F even when it happens to cover one segment.
        multi = j - i > 1 or segments[i].kind == DOUBLE_STAR
        stop = None if segments[j - 1].kind == DOUBLE_STAR else j
        bindings.append(_Binding(name, i, stop, multi))
        i = j

    return PathTemplate(
        template=template,
        segments=tuple(segments),
        verb=verb,
        variables=tuple(b.name for b in bindings),
        specificity=tuple(_RANK[s.kind] for s in segments),
        _bindings=tuple(bindings),
    )


# ---------------------------------------------------------------------------
# Request paths


def _to_bytes(raw: str) -> bytes:
    # raw_path arrives as latin-1-decoded bytes, so latin-1 recovers the bytes the
    # client sent (including unescaped UTF-8 from sloppy clients). A character above
    # U+00FF cannot have come from that, so the caller handed us text: use UTF-8.
    try:
        return raw.encode("latin-1")
    except UnicodeEncodeError:
        return raw.encode("utf-8")


def _decode(raw: str) -> str | None:
    """Percent-decode one segment to text; None if the bytes are not UTF-8."""
    if raw.isascii() and "%" not in raw:
        return raw
    try:
        return unquote_to_bytes(_to_bytes(raw)).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode_keep_slash(raw: str) -> str:
    if "%2" not in raw:
        return _decode(raw)  # type: ignore[return-value]  # whole segment already decoded fine
    # Splitting at an ASCII escape keeps every piece valid UTF-8 if the whole was.
    pieces = raw.replace("%2f", "%2F").split("%2F")
    return "%2F".join(_decode(p) for p in pieces)  # type: ignore[misc]


@dataclass(slots=True)
class _Path:
    raw: list[str]
    decoded: list[str]

    @classmethod
    def from_raw(cls, raw: list[str]) -> _Path | None:
        decoded = []
        for seg in raw:
            # Strict like grpc-gateway: `//` or a trailing `/` is not the same resource.
            if not seg:
                return None
            text = _decode(seg)
            if text is None:
                return None
            decoded.append(text)
        return cls(list(raw), decoded)


# ---------------------------------------------------------------------------
# Matching


@dataclass(frozen=True)
class Match:
    value: object
    params: dict[str, str]
    template: PathTemplate


@dataclass(frozen=True)
class MethodNotAllowed:
    allowed: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    template: PathTemplate
    value: object
    tail_min: int   # only meaningful for routes stored in _Node.deep


class _Node:
    """A trie over template shapes; one trie per verb.

    Walking children in the order literal, "*", "**" visits templates in exactly
    the order of their specificity (lexicographic per-segment ranks), so the first
    route found for a method is the winner and no sorting happens per request.
    """

    __slots__ = ("literals", "star", "routes", "deep")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.routes: list[_Route] = []   # templates that end at this node
        self.deep: list[_Route] = []     # templates whose final "**" hangs off this node

    def walk(self, decoded: list[str], i: int) -> Iterator[_Route]:
        if i == len(decoded):
            # A shorter rank tuple that is a prefix of a longer one sorts first.
            yield from self.routes
            for route in self.deep:
                if route.tail_min == 0:
                    yield route
            return
        child = self.literals.get(decoded[i])
        if child is not None:
            yield from child.walk(decoded, i + 1)
        if self.star is not None:
            yield from self.star.walk(decoded, i + 1)
        # At least one segment remains, which satisfies any tail_min.
        yield from self.deep


class PathMatcher:
    """Routes (HTTP method, raw request path) to values registered with HttpRule templates."""

    # Remembered results: a gateway sees the same few paths over and over, and a walk of the trie
    # costs several µs a request. Bounded in entries and in key length, emptied when full.
    _CACHE_ENTRIES = 1024
    _CACHE_PATH_CHARS = 256

    def __init__(self) -> None:
        self._tries: dict[str | None, _Node] = {}
        self._keys: set[tuple[str, str]] = set()
        self._cache: dict[tuple[str, str], Match | MethodNotAllowed | None] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, method: str, template: str | PathTemplate, value: object) -> None:
        method = method.upper()
        if not method or not all(c in _METHOD_CHARS for c in method):
            raise TemplateError(f"invalid HTTP method {method!r}")
        tpl = template if isinstance(template, PathTemplate) else parse_template(template)
        key = (method, tpl.template)
        if key in self._keys:
            raise TemplateError(f"duplicate route: {method} {tpl.template} is already registered")
        self._keys.add(key)
        self._cache.clear()

        node = self._tries.setdefault(tpl.verb, _Node())
        segs = tpl.segments
        last_is_deep = segs[-1].kind == DOUBLE_STAR
        for seg in segs[:-1] if last_is_deep else segs:
            if seg.kind == LITERAL:
                node = node.literals.setdefault(seg.literal, _Node())
            else:
                if node.star is None:
                    node.star = _Node()
                node = node.star
        route = _Route(method, tpl, value, tpl._tail_min)
        (node.deep if last_is_deep else node.routes).append(route)

    def match(self, method: str, raw_path: str) -> Match | MethodNotAllowed | None:
        """Find the route for a request.

        `raw_path` is the still-percent-encoded path without the query string
        (ASGI `scope["raw_path"].decode("latin-1")`), so that `%2F` stays inside
        its segment.
        """
        key = (method, raw_path)
        try:
            found = self._cache[key]
        except KeyError:
            found = self._match(method, raw_path)
            if len(raw_path) <= self._CACHE_PATH_CHARS:
                if len(self._cache) >= self._CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = found
        if type(found) is Match:  # the caller's own params
            return Match(found.value, dict(found.params), found.template)
        return found

    def _match(self, method: str, raw_path: str) -> Match | MethodNotAllowed | None:
        if not raw_path.startswith("/"):
            return None
        method = method.upper()
        raw = raw_path[1:].split("/")
        whole = _Path.from_raw(raw)
        if whole is None:
            return None

        last = raw[-1]
        colon = last.rfind(":")
        if colon > 0:
            verb = _decode(last[colon + 1:])
            root = self._tries.get(verb)
            if root is not None:
                prefix = last[:colon]
                split = _Path(raw[:-1] + [prefix], whole.decoded[:-1] + [_decode(prefix)])  # type: ignore[list-item]
                found = self._resolve(root, split, method)
                # Any verb-template match, even for another method, claims the path:
                # `GET /keys/x:revoke` must not fall through to `GET /keys/{id}`.
                if found is not None:
                    return found

        root = self._tries.get(None)
        if root is None:
            return None
        return self._resolve(root, whole, method)

    def _resolve(self, root: _Node, path: _Path, method: str) -> Match | MethodNotAllowed | None:
        head_fallback: _Route | None = None
        allowed: set[str] = set()
        for route in root.walk(path.decoded, 0):
            if route.method == method:
                return Match(route.value, route.template._bind(path), route.template)
            if method == "HEAD" and route.method == "GET" and head_fallback is None:
                head_fallback = route
            allowed.add(route.method)
        # A HEAD route anywhere beats the GET fallback, hence only after the full walk.
        if head_fallback is not None:
            return Match(head_fallback.value, head_fallback.template._bind(path), head_fallback.template)
        if allowed:
            return MethodNotAllowed(frozenset(allowed))
        return None
