"""MetricsService: this process's Prometheus metrics, for operator admin keys (GET /metrics)."""

from __future__ import annotations

from google.api import httpbody_pb2

from services.errors import Reason, ServiceError
from services.telemetry.metrics import CONTENT_TYPE, GatewayMetrics
from switchyard.metrics.v1 import metrics_pb2, metrics_pb2_grpc


class MetricsServicer(metrics_pb2_grpc.MetricsServiceServicer):
    def __init__(self, metrics: GatewayMetrics | None) -> None:
        self._metrics = metrics

    async def GetMetrics(self, request, context) -> metrics_pb2.GetMetricsResponse:
        if self._metrics is None:
            raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, "Metrics are turned off on this gateway (metrics.enabled).")
        return metrics_pb2.GetMetricsResponse(body=httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=self._metrics.render()))
