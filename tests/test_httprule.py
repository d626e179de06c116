from __future__ import annotations

import pytest

from edge.httprule import (
    DOUBLE_STAR,
    LITERAL,
    Match,
    MethodNotAllowed,
    PathMatcher,
    PathTemplate,
    TemplateError,
    parse_template,
)


def shape(t: PathTemplate) -> str:
    """Segments as text, variables in braces: "v1/{name=projects/*}"."""
    out: list[str] = []
    current: str | None = None
    for seg in t.segments:
        text = seg.literal if seg.kind == LITERAL else seg.kind
        if seg.variable is not None and seg.variable == current:
            out[-1] = out[-1][:-1] + "/" + text + "}"
        elif seg.variable is not None:
            out.append("{" + seg.variable + "=" + text + "}")
        else:
            out.append(text)
        current = seg.variable
    return "/".join(out)


# ---------------------------------------------------------------------------
# Parser

@pytest.mark.parametrize(
    ("template", "expected_shape", "verb", "variables", "specificity"),
    [
        ("/v1/keys", "v1/keys", None, (), (0, 0)),
        ("/v1/keys/{key_id}", "v1/keys/{key_id=*}", None, ("key_id",), (0, 0, 1)),
        ("/v1/keys/{key_id=*}", "v1/keys/{key_id=*}", None, ("key_id",), (0, 0, 1)),
        ("/v1/keys/{key_id}:revoke", "v1/keys/{key_id=*}", "revoke", ("key_id",), (0, 0, 1)),
        ("/v1/{name=keys/*}", "v1/{name=keys/*}", None, ("name",), (0, 0, 1)),
        ("/v1/{name=projects/*/keys/*}:get", "v1/{name=projects/*/keys/*}", "get", ("name",), (0, 0, 1, 0, 1)),
        ("/v1/{name=**}", "v1/{name=**}", None, ("name",), (0, 2)),
        ("/v1/{name=files/**}:download", "v1/{name=files/**}", "download", ("name",), (0, 0, 2)),
        ("/v1/*/x", "v1/*/x", None, (), (0, 1, 0)),
        ("/v1/**", "v1/**", None, (), (0, 2)),
        ("/**", "**", None, (), (2,)),
        ("/v1:batchGet", "v1", "batchGet", (), (0,)),
        ("/v1/{parent.id}/children/{child_id}", "v1/{parent.id=*}/children/{child_id=*}", None,
         ("parent.id", "child_id"), (0, 1, 0, 1)),
        ("/v1/{a.b_c.D9}", "v1/{a.b_c.D9=*}", None, ("a.b_c.D9",), (0, 1)),
        ("/v1/{_x=lit}", "v1/{_x=lit}", None, ("_x",), (0, 0)),
        ("/v1/a-b.c~d_e!$&'()+,;@", "v1/a-b.c~d_e!$&'()+,;@", None, (), (0, 0)),
    ],
)
def test_parse_accepts(template, expected_shape, verb, variables, specificity):
    t = parse_template(template)
    assert t.template == template
    assert shape(t) == expected_shape
    assert t.verb == verb
    assert t.variables == variables
    assert t.specificity == specificity
    assert str(t) == template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "must start with '/'"),
        ("v1/keys", "must start with '/'"),
        ("/", "empty segment"),
        ("/v1/", "empty segment"),
        ("/v1//keys", "empty segment"),
        ("/v1/:verb", "empty segment"),
        ("/v1/{a=}", "empty segment"),
        ("/v1/{a=x//y}", "empty segment"),
        ("/v1/{key_id", "unbalanced '{'"),
        ("/v1/{name=keys/*", "unbalanced '{'"),
        ("/v1/key_id}", "unbalanced '}'"),
        ("/v1/}", "unbalanced '}'"),
        ("/v1/{a}}", "unbalanced '}'"),
        ("/v1/{a={b}}", "nested variable"),
        ("/v1/{a=x/{b}}", "nested variable"),
        ("/v1/**/x", "'**' must be the last segment"),
        ("/v1/{name=**}/x", "'**' must be the last segment"),
        ("/v1/{name=**/x}", "'**' must be the last segment"),
        ("/v1/{1a}", "expected a field name"),
        ("/v1/{}", "expected a field name"),
        ("/v1/{a.}", "expected a field name"),
        ("/v1/{.a}", "expected a field name"),
        ("/v1/{a-b}", "unexpected '-' in variable 'a'"),
        ("/v1/{a}/{a}", "variable 'a' appears twice"),
        ("/v1/a*", "must be a whole segment"),
        ("/v1/*a", "must be a whole segment"),
        ("/v1/***", "must be a whole segment"),
        ("/v1/a{b}", "a variable must be a whole segment"),
        ("/v1/{a}b", "a variable must be a whole segment"),
        ("/v1/{a}*", "must be a whole segment"),
        ("/v1/a b", "invalid character ' '"),
        ("/v1/a%2Fb", "invalid character '%'"),
        ("/v1/keys?x=1", "invalid character '?'"),
        ("/v1:", "empty verb"),
        ("/v1/a:b/c", "must be the last part"),
        ("/v1/a:b:c", "must be the last part"),
        ("/v1/{a=b:c}", "':' is not allowed inside the variable {a}"),
        ("/v1/{a=*:c}", "':' is not allowed inside the variable {a}"),
    ],
)
def test_parse_rejects(template, message):
    with pytest.raises(TemplateError) as info:
        parse_template(template)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_rejects_non_string():
    with pytest.raises(TemplateError, match="must be a str"):
        parse_template(b"/v1/keys")  # type: ignore[arg-type]


def test_specificity_orders_literal_star_doublestar():
    templates = ["/v1/**", "/v1/{name=**}", "/v1/*/x", "/v1/*", "/v1/keys", "/v1/keys/{k}", "/v1"]
    ordered = sorted(templates, key=lambda t: parse_template(t).specificity)
    # Python's sort is stable, so equal keys keep their listed order.
    assert ordered == ["/v1", "/v1/keys", "/v1/keys/{k}", "/v1/*", "/v1/*/x", "/v1/**", "/v1/{name=**}"]


@pytest.mark.parametrize(
    ("template", "segments", "verb", "expected"),
    [
        ("/v1/keys/{key_id}", ["v1", "keys", "abc"], None, {"key_id": "abc"}),
        ("/v1/keys/{key_id}", ["v1", "keys", "a%2Fb"], None, {"key_id": "a/b"}),
        ("/v1/keys/{key_id}", ["v1", "keys", "abc"], "revoke", None),
        ("/v1/keys/{key_id}:revoke", ["v1", "keys", "abc"], "revoke", {"key_id": "abc"}),
        ("/v1/keys/{key_id}:revoke", ["v1", "keys", "abc"], None, None),
        ("/v1/keys/{key_id}:revoke", ["v1", "keys", "abc"], "re%76oke", {"key_id": "abc"}),
        ("/v1/keys/{key_id}:revoke", ["v1", "keys", "abc"], "get", None),
        ("/v1/keys/{key_id}", ["v1", "keys"], None, None),
        ("/v1/keys/{key_id}", ["v1", "keys", "a", "b"], None, None),
        ("/v1/keys/{key_id}", ["v1", "Keys", "a"], None, None),
        ("/v1/keys/{key_id}", ["v1", "keys", ""], None, None),
        ("/v1/keys/{key_id}", ["v1", "keys", "%FF"], None, None),
        ("/v1/{name=**}", ["v1", "a%2Fb", "c"], None, {"name": "a%2Fb/c"}),
        ("/v1/{name=**}", ["v1"], None, None),
        ("/v1/**", ["v1"], None, {}),
        ("/v1/**", ["v1", "a", "b"], None, {}),
        ("/v1/**", ["v2", "a"], None, None),
    ],
)
def test_template_match(template, segments, verb, expected):
    assert parse_template(template).match(segments, verb) == expected


# ---------------------------------------------------------------------------
# Matcher

ROUTES = [
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys/{key_id}"),
    ("DELETE", "/v1/keys/{key_id}"),
    ("GET", "/v1/keys/self"),
    ("POST", "/v1/keys/{key_id}:revoke"),
    ("GET", "/v1/{name=projects/*/keys/*}:get"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/v1/files/{name=**}"),
    ("GET", "/v1/docs/{name=shelves/*}"),
    ("GET", "/v1/blobs/*"),
    ("GET", "/v1/blobs/**"),
    ("GET", "/v1/{parent.id}/children/{child_id}"),
    ("PUT", "/v1/{a}/x"),
    ("PUT", "/v1/x/{b}"),
    ("GET", "/v1/ping"),
    ("HEAD", "/v1/ping"),
]


@pytest.fixture(scope="module")
def matcher() -> PathMatcher:
    m = PathMatcher()
    for method, template in ROUTES:
        m.add(method, template, f"{method} {template}")
    return m


def ok(route: str, **params: str):
    return ("match", route, params)


def not_allowed(*methods: str):
    return ("405", frozenset(methods))


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # plain routes and 405
        ("GET", "/v1/keys", ok("GET /v1/keys")),
        ("POST", "/v1/keys", ok("POST /v1/keys")),
        ("get", "/v1/keys", ok("GET /v1/keys")),
        ("PATCH", "/v1/keys", not_allowed("GET", "POST")),
        ("GET", "/v1/keys/abc", ok("GET /v1/keys/{key_id}", key_id="abc")),
        ("DELETE", "/v1/keys/abc", ok("DELETE /v1/keys/{key_id}", key_id="abc")),
        ("POST", "/v1/keys/abc", not_allowed("GET", "DELETE")),
        # literal beats variable, but only among routes for the request's method
        ("GET", "/v1/keys/self", ok("GET /v1/keys/self")),
        ("DELETE", "/v1/keys/self", ok("DELETE /v1/keys/{key_id}", key_id="self")),
        ("GET", "/v1/keys/Self", ok("GET /v1/keys/{key_id}", key_id="Self")),
        # custom verbs
        ("POST", "/v1/keys/abc:revoke", ok("POST /v1/keys/{key_id}:revoke", key_id="abc")),
        ("GET", "/v1/keys/abc:revoke", not_allowed("POST")),
        ("DELETE", "/v1/keys/abc:revoke", not_allowed("POST")),
        ("POST", "/v1/keys/a:b:revoke", ok("POST /v1/keys/{key_id}:revoke", key_id="a:b")),
        ("POST", "/v1/keys/a%2Fb:revoke", ok("POST /v1/keys/{key_id}:revoke", key_id="a/b")),
        ("POST", "/v1/keys:revoke", None),  # no revoke template has 2 segments; "keys:revoke" is no literal
        ("GET", "/v1/projects/p1/keys/k1:get", ok("GET /v1/{name=projects/*/keys/*}:get", name="projects/p1/keys/k1")),
        ("GET", "/v1/projects/p%2F1/keys/k%201:get",
         ok("GET /v1/{name=projects/*/keys/*}:get", name="projects/p%2F1/keys/k 1")),
        ("POST", "/v1/projects/p1/keys/k1:get", not_allowed("GET")),
        ("GET", "/v1/projects/p1/keys/k1", None),
        ("GET", "/v1/projects/p1/keys:get", None),
        ("GET", "/v1/projects/p1/k/k1:get", None),
        # a colon no verb template claims stays part of the value
        ("GET", "/v1/models/gpt-4o:latest", ok("GET /v1/models/{model}", model="gpt-4o:latest")),
        ("GET", "/v1/keys/abc:def", ok("GET /v1/keys/{key_id}", key_id="abc:def")),
        ("GET", "/v1/keys/abc:", ok("GET /v1/keys/{key_id}", key_id="abc:")),
        ("GET", "/v1/keys/:revoke", ok("GET /v1/keys/{key_id}", key_id=":revoke")),
        # percent-decoding
        ("GET", "/v1/keys/a%2Fb", ok("GET /v1/keys/{key_id}", key_id="a/b")),
        ("GET", "/v1/keys/a%2fb", ok("GET /v1/keys/{key_id}", key_id="a/b")),
        ("GET", "/v1/keys/a%20b%3Ac", ok("GET /v1/keys/{key_id}", key_id="a b:c")),
        ("GET", "/v1/keys/abc%3Arevoke", ok("GET /v1/keys/{key_id}", key_id="abc:revoke")),
        ("GET", "/v1/keys/caf%C3%A9", ok("GET /v1/keys/{key_id}", key_id="café")),
        ("GET", "/v1/keys/caf\xc3\xa9", ok("GET /v1/keys/{key_id}", key_id="café")),
        ("GET", "/v1/keys/a+b", ok("GET /v1/keys/{key_id}", key_id="a+b")),
        ("GET", "/v1/keys/100%", ok("GET /v1/keys/{key_id}", key_id="100%")),
        ("GET", "/v1/keys/%FF", None),
        ("GET", "/v1/keys/%C3", None),
        ("GET", "/v1/%6Beys", ok("GET /v1/keys")),
        ("GET", "/v1/keys/s%65lf", ok("GET /v1/keys/self")),
        # %2F never splits segments
        ("GET", "/v1/keys%2Fabc", None),
        ("GET", "/v1/models/a%2Fb", ok("GET /v1/models/{model}", model="a/b")),
        # multi-segment variables keep %2F
        ("GET", "/v1/files/a/b/c.txt", ok("GET /v1/files/{name=**}", name="a/b/c.txt")),
        ("GET", "/v1/files/a%2Fb/c%2fd%20e", ok("GET /v1/files/{name=**}", name="a%2Fb/c%2Fd e")),
        ("GET", "/v1/files/x%2Fy", ok("GET /v1/files/{name=**}", name="x%2Fy")),
        ("GET", "/v1/files/x", ok("GET /v1/files/{name=**}", name="x")),
        ("GET", "/v1/files", None),
        ("GET", "/v1/docs/shelves/s%2F1", ok("GET /v1/docs/{name=shelves/*}", name="shelves/s%2F1")),
        ("GET", "/v1/docs/books/s1", None),
        ("GET", "/v1/docs/shelves/s1/x", None),
        # * beats **, bare ** matches zero or more
        ("GET", "/v1/blobs/a", ok("GET /v1/blobs/*")),
        ("GET", "/v1/blobs/a/b", ok("GET /v1/blobs/**")),
        ("GET", "/v1/blobs", ok("GET /v1/blobs/**")),
        # ties between different shapes: earlier literal wins
        ("PUT", "/v1/x/x", ok("PUT /v1/x/{b}", b="x")),
        ("PUT", "/v1/y/x", ok("PUT /v1/{a}/x", a="y")),
        ("PUT", "/v1/x/y", ok("PUT /v1/x/{b}", b="y")),
        ("PUT", "/v1/y/y", None),
        # nested field paths
        ("GET", "/v1/p1/children/c%2F1", ok("GET /v1/{parent.id}/children/{child_id}", **{"parent.id": "p1", "child_id": "c/1"})),
        # strict slashes
        ("GET", "/v1/keys/", None),
        ("GET", "/v1//keys", None),
        ("GET", "//v1/keys", None),
        ("GET", "/v1/keys//abc", None),
        ("POST", "/v1/keys//abc:revoke", None),
        ("GET", "/", None),
        ("GET", "", None),
        ("GET", "v1/keys", None),
        ("GET", "/v1/blobs/", None),
        # HEAD falls back to GET, unless a HEAD route exists
        ("HEAD", "/v1/keys/abc", ok("GET /v1/keys/{key_id}", key_id="abc")),
        ("HEAD", "/v1/keys/self", ok("GET /v1/keys/self")),
        ("HEAD", "/v1/ping", ok("HEAD /v1/ping")),
        ("HEAD", "/v1/keys/abc:revoke", not_allowed("POST")),
        ("OPTIONS", "/v1/ping", not_allowed("GET", "HEAD")),
        # nothing at all
        ("GET", "/v2/keys", None),
        ("GET", "/v1/nothing/here/at/all", None),
    ],
)
def test_match(matcher, method, path, expected):
    found = matcher.match(method, path)
    if expected is None:
        assert found is None
    elif expected[0] == "405":
        assert found == MethodNotAllowed(allowed=expected[1])
    else:
        _, route, params = expected
        assert isinstance(found, Match)
        assert found.value == route
        assert found.params == params
        assert found.template.template == route.split(" ", 1)[1]


def test_same_shape_tie_goes_to_first_added():
    first, second = PathMatcher(), PathMatcher()
    first.add("GET", "/v1/{a}", "a")
    first.add("GET", "/v1/{b}", "b")
    second.add("GET", "/v1/{b}", "b")
    second.add("GET", "/v1/{a}", "a")
    assert first.match("GET", "/v1/z") == Match("a", {"a": "z"}, parse_template("/v1/{a}"))
    assert second.match("GET", "/v1/z") == Match("b", {"b": "z"}, parse_template("/v1/{b}"))


def test_head_route_beats_more_specific_get_fallback():
    m = PathMatcher()
    m.add("GET", "/v1/keys/self", "get-self")
    m.add("HEAD", "/v1/keys/{key_id}", "head-any")
    found = m.match("HEAD", "/v1/keys/self")
    assert isinstance(found, Match)
    assert (found.value, found.params) == ("head-any", {"key_id": "self"})


def test_verb_templates_never_match_paths_without_verb():
    m = PathMatcher()
    m.add("POST", "/v1/keys/{key_id}:revoke", "revoke")
    assert m.match("POST", "/v1/keys/abc") is None
    assert m.match("POST", "/v1/keys/abc%3Arevoke") is None
    assert m.match("POST", "/v1/keys/abc:revoke") == Match("revoke", {"key_id": "abc"}, parse_template("/v1/keys/{key_id}:revoke"))


def test_verb_phase_claims_path_even_when_fallback_would_match():
    m = PathMatcher()
    m.add("GET", "/v1/{name=**}", "catch-all")
    m.add("POST", "/v1/keys/{key_id}:revoke", "revoke")
    assert m.match("GET", "/v1/keys/abc:revoke") == MethodNotAllowed(frozenset({"POST"}))
    # a verb nobody registered falls through to the verb-less templates
    found = m.match("GET", "/v1/keys/abc:rotate")
    assert isinstance(found, Match)
    assert (found.value, found.params) == ("catch-all", {"name": "keys/abc:rotate"})


def test_empty_matcher_matches_nothing():
    assert PathMatcher().match("GET", "/v1/keys") is None


@pytest.mark.parametrize(
    ("first", "second", "raises"),
    [
        (("GET", "/v1/keys"), ("GET", "/v1/keys"), True),
        (("GET", "/v1/keys"), ("get", "/v1/keys"), True),
        (("GET", "/v1/keys"), ("GET", parse_template("/v1/keys")), True),
        (("POST", "/v1/k/{a}:x"), ("POST", "/v1/k/{a}:x"), True),
        (("GET", "/v1/keys"), ("POST", "/v1/keys"), False),
        (("GET", "/v1/k/{a}"), ("GET", "/v1/k/{a}:x"), False),
        # different text, same shape: allowed (the first added wins at match time)
        (("GET", "/v1/k/{a}"), ("GET", "/v1/k/{a=*}"), False),
    ],
)
def test_duplicate_registration(first, second, raises):
    m = PathMatcher()
    m.add(first[0], first[1], "first")
    if raises:
        with pytest.raises(TemplateError, match="duplicate route"):
            m.add(second[0], second[1], "second")
        assert len(m) == 1
    else:
        m.add(second[0], second[1], "second")
        assert len(m) == 2


@pytest.mark.parametrize("method", ["", "GE T", "GET/", "G{T"])
def test_invalid_method_rejected(method):
    with pytest.raises(TemplateError, match="invalid HTTP method"):
        PathMatcher().add(method, "/v1/keys", None)


def test_add_rejects_invalid_template():
    m = PathMatcher()
    with pytest.raises(TemplateError, match="unbalanced"):
        m.add("GET", "/v1/{key_id", None)
    assert len(m) == 0


def test_custom_method():
    m = PathMatcher()
    m.add("purge", "/v1/cache/{name=**}", "purge")
    found = m.match("PURGE", "/v1/cache/a/b")
    assert isinstance(found, Match)
    assert (found.value, found.params) == ("purge", {"name": "a/b"})
    assert m.match("GET", "/v1/cache/a/b") == MethodNotAllowed(frozenset({"PURGE"}))
