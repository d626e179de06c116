"""REST routes derived from the `google.api.http` annotations in the compiled descriptors.

Adding a REST endpoint means annotating an RPC; nothing here names an endpoint. The edge's codec
table (edge/codecs.py) names bindings by RPC, verb and template; this module ties each annotated
binding to its codec and error surface once, at start-up, and refuses a codec that names a binding
no RPC declares. A request's match then carries both: nothing is looked up per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from edge.errors import DEFAULT, SURFACES
from edge.httprule import DOUBLE_STAR, LITERAL, PathMatcher, PathTemplate, parse_template

if TYPE_CHECKING:
    from edge.codecs import Codec


class BindingKey(NamedTuple):
    """One HttpRule of one RPC: its primary rule or one of its additional_bindings."""

    rpc: str        # the gRPC full method name: "/switchyard.routing.v1.RoutingService/CreateChatCompletion"
    verb: str       # "POST"
    template: str   # "/v1/messages"

    def __str__(self) -> str:
        return f"{self.verb} {self.template} ({self.rpc.rsplit('/', 1)[-1]})"


class RouteTableError(ValueError):
    """The codec table or the surfaces do not fit the contract's bindings; the edge must not start."""


@dataclass(frozen=True, slots=True)
class Binding:
    rpc_path: str                 # "/switchyard.auth.v1.AuthService/CreateKey"
    method: MethodDescriptor
    body: str                     # "", "*" or a field name
    response_body: str
    request_class: type[Message]
    response_class: type[Message]
    server_streaming: bool
    http_method: str = ""         # "POST"
    template: str = ""            # "/v1/keys/{key_id}:revoke"
    # The vendor dialect's codec, or None: generic HttpRule transcoding.
    codec: Codec | None = None
    # Whose error shape its answers take: a name from edge.errors.SURFACES.
    surface: str = DEFAULT

    @property
    def key(self) -> BindingKey:
        return BindingKey(self.rpc_path, self.http_method, self.template)


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
    """(HTTP method, path template, binding) for every HttpRule and additional binding, without
    codecs or surfaces (RouteTable adds those)."""
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
                    http_method=http_method,
                    template=template,
                )


@dataclass(slots=True)
class _RootNode:
    children: dict[str, _RootNode] = field(default_factory=dict)
    surface: str | None = None
    exact: bool = False  # the root itself is a binding of the surface, not only what lies below it


class RouteTable:
    """Every annotated binding with its codec and surface, and the matcher over them.

    `codecs` names bindings by BindingKey; `service_surfaces` gives the surface of a service's
    bindings that have no codec (by service full name; the rest: the default surface).
    """

    def __init__(self, services: list[ServiceDescriptor], codecs: Mapping[BindingKey, Codec],
                 service_surfaces: Mapping[str, str]) -> None:
        declared = {service.full_name for service in services}
        for service_name, surface in service_surfaces.items():
            if service_name not in declared:
                raise RouteTableError(f"a surface is declared for {service_name}, which the contract does not have")
            _check_surface(surface, service_name)
        bindings = []
        for _, _, bare in http_rules(services):
            codec = codecs.get(bare.key)
            if codec is not None:
                _check_surface(codec.surface, str(bare.key))
                surface = codec.surface
            else:
                surface = service_surfaces.get(bare.method.containing_service.full_name, DEFAULT)
            bindings.append(dataclasses.replace(bare, codec=codec, surface=surface))
        annotated = {binding.key for binding in bindings}
        unbound = [str(key) for key in codecs if key not in annotated]
        if unbound:
            raise RouteTableError(
                "codecs name bindings that no RPC's google.api.http annotation declares (renamed or removed?): "
                + "; ".join(unbound))
        self.bindings: tuple[Binding, ...] = tuple(bindings)
        self.matcher = PathMatcher()
        for binding in bindings:
            self.matcher.add(binding.http_method, binding.template, binding)
        self._roots = _roots_of(self.bindings)

    def surface_of(self, path: str) -> str:
        """The surface of a path no binding matched (an unknown path, a method it does not allow) or
        of a request refused before routing: the surface whose root the path lies in, else the
        default. A binding the path matches always has that same surface (checked at start-up)."""
        node = self._roots
        surface = DEFAULT
        segments = path.split("/")
        if segments[0]:  # not an absolute path ("*", garbage)
            return surface
        last = len(segments) - 1
        for i in range(1, len(segments)):
            node = node.children.get(segments[i])
            if node is None:
                break
            if node.surface is not None and (i < last or node.exact):
                surface = node.surface
        return surface


def _check_surface(surface: str, owner: str) -> None:
    if surface not in SURFACES:
        raise RouteTableError(f"{owner} names the surface {surface!r}; the surfaces are {', '.join(sorted(SURFACES))}")


# ---------------------------------------------------------------------------------------------------
# Surface roots: where a path that matches no binding belongs.
#
# A surface's root is the longest run of literal segments its bindings start with, cut before a
# collection (a segment some binding follows with a variable): /api/v1 for the templated API,
# /v1/messages for Anthropic, /v1beta for Gemini (its bindings share /v1beta/models, but models is
# a collection whose siblings, /v1beta/files and the like, are Gemini's API too). Where that run is
# shared with another surface's binding, the surface's bindings split by their next segment into
# several roots. A mistyped path below a root gets the error shape that vendor's SDK parses; the
# default surface has no root.


def _wire_literals(template: PathTemplate) -> list[str]:
    """The leading segments of the template that are literal on the wire (a verb's segment is not)."""
    literals = []
    for segment in template.segments:
        if segment.kind != LITERAL:
            break
        literals.append(segment.literal)
    if template.verb is not None and len(literals) == len(template.segments):
        literals.pop()
    return literals


def _shared_literals(templates: list[PathTemplate]) -> list[str]:
    shared = _wire_literals(templates[0])
    for template in templates[1:]:
        literals = _wire_literals(template)
        common = 0
        while common < min(len(shared), len(literals)) and shared[common] == literals[common]:
            common += 1
        shared = shared[:common]
    return shared


def _above_collections(shared: list[str], templates: list[PathTemplate]) -> tuple[str, ...]:
    for i in range(len(shared)):
        if any(len(t.segments) > i + 1 and t.segments[i + 1].kind != LITERAL for t in templates):
            return tuple(shared[:i])
    return tuple(shared)


def _overlaps(template: PathTemplate, root: tuple[str, ...]) -> bool:
    """Whether some path the template matches lies in the root (is the root or below it)."""
    segments = template.segments
    for i, part in enumerate(root):
        if i == len(segments):
            return False  # the template ends above the root
        segment = segments[i]
        if segment.kind == DOUBLE_STAR:
            return True
        on_wire_with_verb = i == len(segments) - 1 and template.verb is not None
        if segment.kind == LITERAL and (segment.literal != part or on_wire_with_verb):
            return False
    return True


def _roots(surface: str, mine: list[Binding], others: list[Binding]) -> list[tuple[str, ...]]:
    templates = [parse_template(b.template) for b in mine]
    shared = _shared_literals(templates)
    root = _above_collections(shared, templates)
    clash = next((o for o in others if _overlaps(parse_template(o.template), root)), None) if root else None
    if root and clash is None:
        return [root]
    groups: dict[str, list[Binding]] = {}
    for binding, template in zip(mine, templates):
        literals = _wire_literals(template)
        if len(literals) == len(shared):
            where = f"where the {clash.surface} surface's {clash.key} lies" if clash else "below no literal path segment"
            raise RouteTableError(f"{binding.key} answers in the {surface} surface {where}: "
                                  "no path segment sets its API apart")
        groups.setdefault(literals[len(shared)], []).append(binding)
    return [root for group in groups.values() for root in _roots(surface, group, others)]


def _roots_of(bindings: tuple[Binding, ...]) -> _RootNode:
    top = _RootNode()
    for surface in sorted({b.surface for b in bindings} - {DEFAULT}):
        mine = [b for b in bindings if b.surface == surface]
        others = [b for b in bindings if b.surface != surface]
        for root in _roots(surface, mine, others):
            node = top
            for part in root:
                node = node.children.setdefault(part, _RootNode())
            node.surface = surface
            node.exact = any(b.template == "/" + "/".join(root) for b in mine)
    return top
