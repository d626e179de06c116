"""HealthService: the cached health snapshot of every configured upstream provider."""

from __future__ import annotations

from services.health.monitor import HealthMonitor
from switchyard.health.v1 import health_pb2, health_pb2_grpc


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    async def GetLlmHealth(self, request, context) -> health_pb2.GetLlmHealthResponse:
        snapshot = await self._monitor.snapshot()
        response = health_pb2.GetLlmHealthResponse(status=snapshot.status)
        response.checked_at.FromDatetime(snapshot.checked_at)
        for name, provider in snapshot.providers.items():
            entry = response.providers[name]
            entry.status = provider.status
            entry.latency_ms = provider.latency_ms
            if provider.detail:
                entry.detail = provider.detail
        return response
