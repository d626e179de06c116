"""HealthService: the cached health snapshot of every configured upstream provider."""

from __future__ import annotations

from services.health.monitor import HealthMonitor
from services.routing.cooldown import CooldownTracker
from services.routing.servicer import provider_cooldowns
from switchyard.health.v1 import health_pb2, health_pb2_grpc


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    def __init__(self, monitor: HealthMonitor, cooldown: CooldownTracker) -> None:
        self._monitor = monitor
        self._cooldown = cooldown

    async def GetLlmHealth(self, request, context) -> health_pb2.GetLlmHealthResponse:
        snapshot = await self._monitor.snapshot()
        # A provider whose deployments keep failing real traffic is not healthy, whatever its
        # last probe said: that is live information the probe snapshot may be minutes behind on.
        cooling = provider_cooldowns(await self._cooldown.cooling())
        response = health_pb2.GetLlmHealthResponse()
        response.checked_at.FromDatetime(snapshot.checked_at)
        for name, provider in snapshot.providers.items():
            entry = response.providers[name]
            entry.latency_ms = provider.latency_ms
            if name in cooling:
                entry.status, entry.detail = "error", cooling[name]
            else:
                entry.status = provider.status
                if provider.detail:
                    entry.detail = provider.detail
        all_ok = all(p.status == "ok" for p in response.providers.values())
        response.status = "ok" if all_ok else "degraded"
        return response
