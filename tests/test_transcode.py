"""Query/path/body -> request message, and response -> JSON, on a message built for the test."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from edge.transcode import JsonStyle, TranscodeError, build_request, render_response

F = descriptor_pb2.FieldDescriptorProto


def _message_classes():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="sytest/v1/t.proto", package="sytest.v1", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    color = file.enum_type.add(name="Color")
    for i, name in enumerate(["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_DARK_BLUE"]):
        color.value.add(name=name, number=i)
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="name")
    inner.field.add(name="page_size", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL, json_name="pageSize")
    req = file.message_type.add(name="Req")
    fields = [
        ("key_id", F.TYPE_STRING, F.LABEL_OPTIONAL, None, "keyId"),
        ("big", F.TYPE_INT64, F.LABEL_OPTIONAL, None, "big"),
        ("tags", F.TYPE_STRING, F.LABEL_REPEATED, None, "tags"),
        ("inner", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".sytest.v1.Inner", "inner"),
        ("color", F.TYPE_ENUM, F.LABEL_OPTIONAL, ".sytest.v1.Color", "color"),
        ("flag", F.TYPE_BOOL, F.LABEL_OPTIONAL, None, "flag"),
        ("when", F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".google.protobuf.Timestamp", "when"),
        ("items", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".sytest.v1.Inner", "items"),
        ("colors", F.TYPE_ENUM, F.LABEL_REPEATED, ".sytest.v1.Color", "colors"),
    ]
    for number, (name, ftype, label, type_name, json_name) in enumerate(fields, start=1):
        field = req.field.add(name=name, number=number, type=ftype, label=label, json_name=json_name)
        if type_name:
            field.type_name = type_name
    resp = file.message_type.add(name="Resp")
    resp.field.add(name="item", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".sytest.v1.Inner", json_name="item")
    resp.field.add(name="names", number=2, type=F.TYPE_STRING, label=F.LABEL_REPEATED, json_name="names")
    resp.field.add(name="total", number=3, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL, json_name="total")
    pool.Add(file)
    get = lambda n: message_factory.GetMessageClass(pool.FindMessageTypeByName(n))  # noqa: E731
    return get("sytest.v1.Req"), get("sytest.v1.Inner"), get("sytest.v1.Resp")


Req, Inner, Resp = _message_classes()


def req(query=(), path=None, body=None, body_field=""):
    return build_request(Req, path_params=path or {}, query=list(query), body=body, body_field=body_field)


@pytest.mark.parametrize(
    "query, check",
    [
        ([("key_id", "k1")], lambda m: m.key_id == "k1"),
        ([("keyId", "k1")], lambda m: m.key_id == "k1"),  # JSON name accepted too
        ([("big", "9007199254740993")], lambda m: m.big == 9007199254740993),  # beyond float precision
        ([("tags", "a"), ("tags", "b")], lambda m: list(m.tags) == ["a", "b"]),  # repeated
        ([("inner.name", "x"), ("inner.pageSize", "7")], lambda m: m.inner.name == "x" and m.inner.page_size == 7),
        ([("color", "COLOR_DARK_BLUE")], lambda m: m.color == 2),  # enum by full name
        ([("color", "dark_blue")], lambda m: m.color == 2),  # by short name, any case
        ([("color", "1")], lambda m: m.color == 1),  # by number
        ([("colors", "red"), ("colors", "dark_blue")], lambda m: list(m.colors) == [1, 2]),
        ([("flag", "true")], lambda m: m.flag is True),
        ([("flag", "0")], lambda m: m.flag is False),
        ([("when", "2026-06-27T10:00:00.000Z")], lambda m: m.when.seconds == 1782554400),
    ],
)
def test_query_parameters_map_onto_fields(query, check):
    assert check(req(query))


@pytest.mark.parametrize(
    "query, field",
    [
        ([("nope", "1")], "nope"),  # unknown
        ([("inner.nope", "1")], "inner.nope"),  # unknown nested
        ([("tags.x", "1")], "tags.x"),  # cannot descend into a scalar
        ([("items.name", "1")], "items.name"),  # nor into a repeated message
        ([("color", "green")], "color"),  # not an enum value
        ([("flag", "maybe")], "flag"),
        ([("inner", "x")], "inner"),  # a message cannot come from one string
    ],
)
def test_bad_query_parameters_are_client_errors(query, field):
    with pytest.raises(TranscodeError) as err:
        req(query)
    assert err.value.field == field


def test_bad_scalar_value_is_a_client_error():
    with pytest.raises(TranscodeError, match="big"):
        req([("big", "12x")])


def test_body_star_takes_the_whole_body_and_path_wins():
    m = req(path={"key_id": "from-path"}, body={"keyId": "from-body", "tags": ["t"], "inner": {"name": "n"}}, body_field="*")
    assert (m.key_id, list(m.tags), m.inner.name) == ("from-path", ["t"], "n")


def test_body_star_forbids_query_parameters():
    with pytest.raises(TranscodeError, match="Unknown query parameter 'tags'"):
        req([("tags", "a")], body={}, body_field="*")


def test_body_star_rejects_unknown_fields_and_non_objects():
    with pytest.raises(TranscodeError, match="nope"):
        req(body={"nope": 1}, body_field="*")
    with pytest.raises(TranscodeError, match="JSON object"):
        req(body=[1, 2], body_field="*")


def test_body_field_binds_one_field_and_query_the_rest():
    m = req([("key_id", "q")], body={"name": "b", "pageSize": 3}, body_field="inner")
    assert (m.key_id, m.inner.name, m.inner.page_size) == ("q", "b", 3)
    with pytest.raises(TranscodeError, match="inner.name"):
        req([("inner.name", "q")], body={"name": "b"}, body_field="inner")


def test_path_parameters_nested_and_typed():
    m = req(path={"inner.name": "a/b", "big": "42"})
    assert (m.inner.name, m.big) == ("a/b", 42)
    with pytest.raises(TranscodeError, match="repeated"):
        req(path={"tags": "x"})


def test_a_query_parameter_cannot_rebind_a_path_variable():
    with pytest.raises(TranscodeError, match="key_id"):
        req([("key_id", "other")], path={"key_id": "k"})


def test_render_whole_and_response_body():
    msg = Resp(item=Inner(name="n", page_size=2), names=["a"], total=5)
    camel, snake = JsonStyle(), JsonStyle(proto_names=True)
    assert render_response(msg, "", camel) == {"item": {"name": "n", "pageSize": 2}, "names": ["a"], "total": 5}
    assert render_response(msg, "item", snake) == {"name": "n", "page_size": 2}
    assert render_response(msg, "names", camel) == ["a"]
    # Fields without presence are always shown, so clients see stable shapes.
    assert render_response(Resp(), "", camel) == {"names": [], "total": 0}
