"""OpenTelemetry traces: on when the standard OTLP environment variables say so, absent (and free) otherwise.

One trace per request: the edge's span, the gRPC service's span (W3C `traceparent` carried in gRPC
metadata, and continued from the client's own when it sends one), admission and settlement, and one
span per upstream attempt with the GenAI semantic conventions. Spans carry names, models, token
counts and outcomes, never a prompt, a response or a key.

Parents are passed explicitly (the span stored in the call's context), never attached to the
ambient OpenTelemetry context: the gateway's streams are async generators that may be closed from
another task, where detaching an attached context would fail.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

log = logging.getLogger(__name__)

_TRUE = ("true", "1", "yes")


def tracing_wanted(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() in _TRUE or env.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracing:
    """The process's tracer, or None when tracing is off (callers test `enabled` and skip all work)."""

    def __init__(self, service_name: str, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.enabled = tracing_wanted(env)
        self._provider = None
        self.tracer = None
        self._propagator = None
        if not self.enabled:
            return
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over our default name, as the spec says;
        # OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* are read by the SDK itself.
        resource = Resource({"service.name": service_name}).merge(OTELResourceDetector().detect())
        self._provider = TracerProvider(resource=resource)
        self._provider.add_span_processor(BatchSpanProcessor(_exporter(env)))
        self.tracer = self._provider.get_tracer("switchyard")
        self._propagator = TraceContextTextMapPropagator()

    def extract(self, carrier: Mapping[str, str]):
        """The remote parent named by a `traceparent` in `carrier` (HTTP headers or gRPC metadata)."""
        return self._propagator.extract(carrier)

    def inject(self, span) -> dict[str, str]:
        """`traceparent` (and `tracestate`) naming `span`, to send on."""
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def start(self, name: str, *, parent=None, parent_span=None, kind: str = "INTERNAL", attributes=None):
        """A started span (end it yourself). `parent`: an extracted context; `parent_span`: a span."""
        from opentelemetry import trace

        if parent_span is not None:
            parent = trace.set_span_in_context(parent_span)
        return self.tracer.start_span(name, context=parent, kind=getattr(trace.SpanKind, kind), attributes=attributes)

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def _exporter(env: Mapping[str, str]):
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        if protocol != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; using http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def fail(span, error_type: str) -> None:
    """Mark a span failed, as the semantic conventions have it (`error.type`, status ERROR)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))
