"""The gRPC side of the gateway: storage, shared state, the four services and their interceptor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.engine import make_url

from services.auth.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from services.auth.servicer import AuthServicer
from services.auth.store import DEFAULT_ACCOUNT_ID, KeyStore
from services.auth.user_servicer import UserServicer
from services.auth.users import UserStore
from services.auth.verifier import KeyVerifier
from services.billing.ledger import Ledger
from services.billing.metering import Metering
from services.billing.pending import PendingWrites
from services.billing.postgres_money import PostgresMoneyStore
from services.billing.servicer import BillingServicer
from services.billing.sqlite_money import SqliteMoneyStore
from services.billing.usage_log import UsageLog
from services.billing.usage_summary import run_rollups
from services.config import Settings
from services.generation.log_store import GenerationLogStore
from services.generation.servicer import GenerationServicer
from services.generation.templates import TemplateCatalogue
from services.generation.webhook_urls import UrlGuard
from services.generation.webhooks import WebhookDispatcher
from services.health.monitor import HealthMonitor
from services.health.servicer import HealthServicer
from services.interceptor import PolicyInterceptor
from services.local_channel import LocalChannel
from services.policy import method_policies, service_descriptors
from services.routing.catalogue import PriceCatalogue
from services.routing.cooldown import CooldownTracker
from services.routing.registry import ModelRegistry
from services.routing.router import Router
from services.routing.servicer import RoutingServicer
from services.storage.database import create_engine_for, is_sqlite, migrate, session_factory, sync_url
from services.telemetry.calls import Telemetry
from services.telemetry.calls import disabled as disabled_telemetry
from services.telemetry.servicer import MetricsServicer
from switchyard.auth.v1 import auth_pb2_grpc, users_pb2_grpc
from switchyard.billing.v1 import billing_pb2_grpc
from switchyard.generation.v1 import generation_pb2_grpc
from switchyard.health.v1 import health_pb2_grpc as sy_health_pb2_grpc
from switchyard.metrics.v1 import metrics_pb2_grpc
from switchyard.routing.v1 import routing_pb2_grpc

log = logging.getLogger(__name__)


def open_redis(settings: Settings):
    if not settings.redis_url:
        return None
    import redis.asyncio

    return redis.asyncio.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)


def open_money_store(database_url: str):
    """The ledger's hot path for this database: cached sqlite3 statements with group commit, or
    server functions on PostgreSQL. Neither connects before its first use (the CLI never does)."""
    if is_sqlite(database_url):
        return SqliteMoneyStore(make_url(database_url).database)
    return PostgresMoneyStore(make_url(sync_url(database_url)).set(drivername="postgresql").render_as_string(hide_password=False))


class ServiceRuntime:
    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        # Tools that only open storage (the CLI) report nothing.
        self.telemetry = telemetry or disabled_telemetry()
        self.grpc_port: int | None = None
        self.engine = None
        self.store: KeyStore | None = None
        self.redis = None
        self.limiter: RateLimiter | None = None
        self.verifier: KeyVerifier | None = None
        self.monitor: HealthMonitor | None = None
        self.registry: ModelRegistry | None = None
        self.router: Router | None = None
        self.usage_log: UsageLog | None = None
        self.metering: Metering | None = None
        self.webhooks: WebhookDispatcher | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._tasks: list[asyncio.Task] = []

    async def open_storage(self) -> None:
        """Migrate and connect; enough for the CLI's key commands."""
        await asyncio.to_thread(migrate, self.settings.database_url)
        self.engine = create_engine_for(self.settings.database_url)
        self.sessions = session_factory(self.engine)
        self.store = KeyStore(self.sessions)
        self.users = UserStore(self.sessions)
        self.money = open_money_store(self.settings.database_url)
        self.ledger = Ledger(self.sessions, serialize_writes=is_sqlite(self.settings.database_url), money=self.money)

    async def start(self) -> int:
        settings = self.settings
        await self.open_storage()
        self.redis = open_redis(settings)
        self.limiter = (
            RedisRateLimiter(self.redis, settings.redis_prefix) if self.redis is not None else InProcessRateLimiter()
        )
        self.verifier = KeyVerifier(self.store, settings.key_cache_seconds, sessions=self.users.principal_for_session)
        self.monitor = HealthMonitor(
            list(settings.providers.values()), settings.health, redis=self.redis, prefix=settings.redis_prefix
        )
        self.cooldown = CooldownTracker(
            settings.routing.allowed_fails_per_minute, settings.routing.cooldown_seconds,
            redis=self.redis, prefix=settings.redis_prefix,
        )
        self.catalogue = PriceCatalogue.load()
        self.registry = ModelRegistry.from_config(
            settings.models, self.sessions, settings.routing.registry_refresh_seconds,
            catalogue=self.catalogue, kinds={name: p.kind for name, p in settings.providers.items()},
        )
        await self.registry.refresh()
        self.router = Router(settings.providers, settings.routing, self.cooldown, telemetry=self.telemetry)
        self.usage_log = UsageLog(settings.database_url)
        self.pending_writes = PendingWrites(self.ledger)
        self.metering = Metering(self.ledger, self.usage_log, self.pending_writes, self.telemetry)
        generation = settings.generation
        # Loaded before serving: a broken admin template stops start-up with a clear message.
        self.templates = TemplateCatalogue.load(generation.template_files, generation.templates)
        self.webhook_guard = UrlGuard(generation.webhooks.allow_hosts)
        self.webhooks = WebhookDispatcher(self.sessions, generation.webhooks, self.webhook_guard)
        message_limit = settings.limits.max_body_bytes + (1 << 20)
        interceptor = PolicyInterceptor(
            method_policies(), self.verifier, self.limiter,
            operator_account=DEFAULT_ACCOUNT_ID, account_of_key=self.store.account_of_key, telemetry=self.telemetry,
            default_rate_limit=settings.limits.default_rate_limit_per_minute,
            surface_limits=settings.limits.default_limits_by_service(),
        )
        server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
            ],
        )
        self._health = health.aio.HealthServicer()
        self.local_channel = LocalChannel([interceptor])
        for target in (server, self.local_channel):
            self._register(target)
        await self.local_channel.prepare()
        names = [s.full_name for s in service_descriptors()]
        for name in ["", *names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

        self.grpc_port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
        await server.start()
        self._server = server
        self._tasks.append(asyncio.create_task(self.verifier.run_flusher()))
        self._tasks.append(asyncio.create_task(self.registry.run_refresher()))
        self._tasks.append(asyncio.create_task(self.usage_log.run()))
        self._tasks.append(asyncio.create_task(self._sweep_stale_holds()))
        self._tasks.append(asyncio.create_task(self.pending_writes.run()))
        self._tasks.append(asyncio.create_task(self.webhooks.run()))
        self._tasks.append(asyncio.create_task(run_rollups(self.sessions)))
        metrics = self.telemetry.metrics
        if metrics is not None:
            self._tasks.append(asyncio.create_task(metrics.sample_event_loop()))
            self._tasks.append(asyncio.create_task(metrics.sample_gauges([self._sample_backlogs])))
        return self.grpc_port

    async def _sample_backlogs(self) -> None:
        metrics = self.telemetry.metrics
        metrics.usage_log_depth.set(self.usage_log.pending)
        metrics.cooling.set(len(await self.cooldown.cooling()))
        depth, oldest = await self.webhooks.backlog()
        metrics.webhook_depth.set(depth)
        metrics.webhook_lag.set(oldest)

    def _register(self, server) -> None:
        """Add every servicer to a grpc.aio.Server or to the in-process LocalChannel."""
        settings = self.settings
        auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(self.store, self.verifier), server
        )
        users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(self.users, self.limiter), server)
        sy_health_pb2_grpc.add_HealthServiceServicer_to_server(HealthServicer(self.monitor, self.cooldown), server)
        billing_pb2_grpc.add_BillingServiceServicer_to_server(
            BillingServicer(self.ledger, self.usage_log, self.store, self.sessions, self.verifier), server
        )
        routing = RoutingServicer(
            self.registry, self.router, settings.providers, self.monitor, self.cooldown, self.metering, self.catalogue,
        )
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(routing, server)
        metrics_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(self.telemetry.metrics), server)
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(
            GenerationServicer(
                routing=routing, catalogue=self.templates, logs=GenerationLogStore(self.sessions), ledger=self.ledger,
                webhooks=self.webhooks, guard=self.webhook_guard, sessions=self.sessions, usage_log=self.usage_log,
                default_model=settings.generation.default_model, default_max_tokens=settings.generation.default_max_tokens,
            ),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)

    async def _sweep_stale_holds(self) -> None:
        """Holds whose request can no longer finish (its process died) go back to the wallet."""
        horizon = timedelta(seconds=self.settings.routing.total_timeout_seconds + 300)
        while True:
            try:
                released = await self.ledger.release_stale(horizon)
                if released:
                    log.warning("released %d stale reservations", released)
            except Exception:  # noqa: BLE001 - try again next round
                log.warning("could not sweep stale reservations", exc_info=True)
            await asyncio.sleep(60)

    async def bootstrap_admin_key(self) -> str | None:
        # 0: the surface defaults, like every key created without a limit of its own.
        return await self.store.bootstrap_admin_key(0)

    async def stop(self, grace: float = 10.0) -> None:
        if self._health is not None:
            # Tell load balancers first, so no new calls are routed here while in-flight ones finish.
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.metering is not None:
            await self.metering.drain()  # streams that ended during shutdown still get charged
            await self.pending_writes.retry()  # one last try; what still fails is left to the stale sweep
        if self.usage_log is not None:
            await self.usage_log.flush()  # no usage row is lost on SIGTERM
            self.usage_log.close()
        if self.verifier is not None:
            await self.verifier.flush_last_use()  # nothing pending is lost on shutdown
        for closable in (self.monitor, self.limiter, self.router, self.webhooks):
            if closable is not None:
                await closable.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.engine is not None:
            await self.money.close()
            await self.engine.dispose()
