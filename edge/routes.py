"""REST routes derived from the `google.api.http` annotations in the compiled descriptors.

Adding a REST endpoint means annotating an RPC; nothing here names an endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from edge.httprule import PathMatcher


@dataclass(frozen=True, slots=True)
class Binding:
    rpc_path: str                 # "/switchyard.auth.v1.AuthService/CreateKey"
    method: MethodDescriptor
    body: str                     # "", "*" or a field name
    response_body: str
    request_class: type[Message]
    response_class: type[Message]
    server_streaming: bool


def _rules(rule: http_pb2.HttpRule):
    yield rule
    for extra in rule.additional_bindings:
        yield extra


def _verb_and_template(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def http_rules(services: list[ServiceDescriptor]) -> Iterator[tuple[str, str, Binding]]:
    """(HTTP method, path template, binding) for every HttpRule and additional binding."""
    for service in services:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            for rule in _rules(options.Extensions[annotations_pb2.http]):
                http_method, template = _verb_and_template(rule)
                yield http_method, template, Binding(
                    rpc_path=f"/{service.full_name}/{method.name}",
                    method=method,
                    body=rule.body,
                    response_body=rule.response_body,
                    request_class=message_factory.GetMessageClass(method.input_type),
                    response_class=message_factory.GetMessageClass(method.output_type),
                    server_streaming=method.server_streaming,
                )


def build_matcher(services: list[ServiceDescriptor]) -> PathMatcher:
    matcher = PathMatcher()
    for http_method, template, binding in http_rules(services):
        matcher.add(http_method, template, binding)
    return matcher
