"""GenerationService: the templated generation API on top of routing, billing and keys."""

from __future__ import annotations

import logging
import secrets
import time
from datetime import date, datetime, time as day_time, timedelta, timezone

import orjson
from google.protobuf import json_format
from sqlalchemy import func
from sqlmodel import select

from services import call_context
from services.billing.ledger import Ledger, month_of, usd
from services.errors import Reason, ServiceError, invalid_request
from services.generation.log_store import GenerationLogStore, LogFilter
from services.generation.templates import InvalidOptions, TemplateCatalogue, UnknownTemplate
from services.generation.webhook_urls import UrlGuard, WebhookUrlError
from services.generation.webhooks import WebhookDispatcher
from services.routing.servicer import RoutingServicer
from services.storage.database import as_utc, timestamp_of, utcnow
from services.storage.outages import log_safe
from services.storage.tables import GenerationLogRow, UsageRow
from switchyard.generation.v1 import generation_pb2, generation_pb2_grpc
from switchyard.routing.v1 import chat_pb2

log = logging.getLogger(__name__)

FREESTYLE = "freestyle"
_MAX_PROMPT_CHARS = 20_000
_MAX_BATCH_ID = 128


def parse_bound(text: str, field: str, *, end: bool) -> datetime | None:
    """An ISO 8601 date or date-time as a UTC instant. A date alone covers its whole day, so as an
    end bound it means the start of the next day (bounds are [start, end))."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, day_time(), timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
            if end:
                moment += timedelta(microseconds=1)  # an explicit end instant is included
    except ValueError:
        raise invalid_request(f"{field} must be an ISO 8601 date (2026-11-30) or date-time (2026-11-30T12:00:00Z).", field) from None
    except OverflowError:
        # A valid bound just past what datetime holds (end_date=9999-12-31, 0001-01-01T00:00+01:00):
        # it only means "no bound" on that side.
        return datetime.max.replace(tzinfo=timezone.utc) if end else datetime.min.replace(tzinfo=timezone.utc)
    return moment


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        *,
        routing: RoutingServicer,
        catalogue: TemplateCatalogue,
        logs: GenerationLogStore,
        ledger: Ledger,
        webhooks: WebhookDispatcher,
        guard: UrlGuard,
        sessions,
        usage_log,
        default_model: str,
        default_max_tokens: int,
    ) -> None:
        self._routing = routing
        self._catalogue = catalogue
        self._logs = logs
        self._ledger = ledger
        self._webhooks = webhooks
        self._guard = guard
        self._sessions = sessions
        self._usage_log = usage_log
        self._default_model = default_model
        self._default_max_tokens = default_max_tokens

    async def Generate(self, request, context) -> generation_pb2.GenerateResponse:
        ctx = call_context.current()
        _refuse_nul(request, ("prompt", "template", "model", "request_id", "webhook_url"))
        prompt = request.prompt
        if not prompt.strip():
            raise invalid_request("prompt is required.", "prompt")
        if len(prompt) > _MAX_PROMPT_CHARS:
            raise invalid_request(f"prompt must be at most {_MAX_PROMPT_CHARS} characters.", "prompt")
        if len(request.request_id) > _MAX_BATCH_ID:
            raise invalid_request(f"request_id must be at most {_MAX_BATCH_ID} characters.", "request_id")
        if request.HasField("max_tokens") and request.max_tokens < 1:
            raise invalid_request("max_tokens must be at least 1.", "max_tokens")
        options = json_format.MessageToDict(request.options) if request.HasField("options") else {}
        if (where := _nul_in(options, "options")) is not None:
            raise invalid_request(f"{where} must not contain NUL characters.", where)
        try:
            rendered = self._catalogue.render(request.template or None, prompt, options)
        except UnknownTemplate as exc:
            raise ServiceError(
                Reason.ERROR_REASON_INVALID_TEMPLATE,
                f"Unknown template '{request.template}'. GET /api/v1/templates lists them.",
                metadata={"field": "template"},
            ) from exc
        except InvalidOptions as exc:
            raise invalid_request(str(exc), exc.field) from exc
        template = self._catalogue.get(request.template) if request.template else None
        if request.webhook_url:
            # Refused before anything is generated or charged.
            try:
                await self._guard.check(request.webhook_url)
            except WebhookUrlError as exc:
                message = str(exc) if "webhook_url" in str(exc) else f"webhook_url is not allowed: {exc}"
                raise invalid_request(message, "webhook_url") from exc

        model = request.model or (template.model if template is not None and template.model else self._default_model)
        if request.HasField("max_tokens"):
            max_tokens = request.max_tokens  # the model's limit is checked like any chat request's
        else:
            # A default must never fail a request: it shrinks to what the model can produce.
            max_tokens = template.max_tokens if template is not None and template.max_tokens else self._default_max_tokens
            max_tokens = min(max_tokens, self._routing.output_limit(model) or max_tokens)
        chat = chat_pb2.ChatRequest(
            model=model,
            max_tokens=max_tokens,
            messages=[
                chat_pb2.ChatMessage(role="system", text=rendered.system),
                chat_pb2.ChatMessage(role="user", text=rendered.user),
            ],
        )
        template_used = rendered.template or FREESTYLE
        started = time.monotonic()
        completion = await self._routing.complete_chat(chat, endpoint="generate", template=template_used)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        content = completion.choices[0].message.text if completion.choices else ""
        usage = completion.usage
        wallet = await self._ledger.wallet(ctx.principal.account_id)

        row = GenerationLogRow(
            id=f"gen_{secrets.token_hex(12)}", account_id=ctx.principal.account_id, key_id=ctx.principal.key_id,
            gateway_request_id=ctx.request_id, batch_id=request.request_id, template=template_used, model=chat.model,
            # The caller's input has no NUL (refused above); an upstream's output may, and PostgreSQL
            # cannot store it in text. The log keeps a visible stand-in; the answer and the webhook
            # body (JSON, where it is escaped) keep the content exactly.
            prompt=prompt, response=content.replace("\x00", "\ufffd"), input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cost_nano=usage.cost_nano_usd, generation_time_ms=elapsed_ms,
            webhook_url=request.webhook_url, webhook_status="pending" if request.webhook_url else "", created_at=utcnow(),
        )
        await self._store_generation(row, content)
        total = usage.total_tokens or usage.input_tokens + usage.output_tokens
        return generation_pb2.GenerateResponse(
            success=True,
            data=generation_pb2.GenerateResult(
                content=content, template_used=template_used, generation_id=row.id, request_id=request.request_id,
                model=chat.model, webhook_status=row.webhook_status,
            ),
            usage=generation_pb2.GenerationUsage(
                input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, total_tokens=total,
                cost_usd=usd(usage.cost_nano_usd), cost_nano_usd=usage.cost_nano_usd,
            ),
            balance=generation_pb2.BalanceSummary(remaining=usd(wallet.balance_nano), remaining_nano_usd=wallet.balance_nano),
        )

    async def _store_generation(self, row: GenerationLogRow, content: str) -> None:
        """The log row and its webhook delivery, in one transaction. The charge is already in the
        ledger, so a failure here must not withhold what was paid for; instead the row is stored
        alone as webhook_status "failed" if it can be, and the answer says "failed" either way."""
        delivery = None
        try:
            delivery = self._webhook_delivery(row, content) if row.webhook_url else None
            await self._logs.add(row, delivery)
        except Exception as exc:  # noqa: BLE001
            # The type only: the row carries the prompt, the response and the webhook URL.
            log.error("could not store generation %s (request %s): %s", row.id, row.gateway_request_id, log_safe(exc))
            if not row.webhook_url:
                return
            row.webhook_status = "failed"
            try:
                await self._logs.add(GenerationLogRow(**row.model_dump()))  # a fresh object: the failed session had this one
            except Exception as again:  # noqa: BLE001
                log.error("could not store generation %s without its webhook either: %s", row.id, log_safe(again))
        else:
            if delivery is not None:
                self._webhooks.wake()

    def _webhook_delivery(self, row: GenerationLogRow, content: str):
        body = orjson.dumps({
            "event": "generation.completed",
            "generation_id": row.id,
            "request_id": row.batch_id,
            "template": row.template,
            "model": row.model,
            "content": content,
            "usage": {
                "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
                "total_tokens": row.input_tokens + row.output_tokens,
                "cost_usd": usd(row.cost_nano), "cost_nano_usd": row.cost_nano,
            },
            "generation_time_ms": row.generation_time_ms,
            "created_at": as_utc(row.created_at).isoformat().replace("+00:00", "Z"),
        })
        return self._webhooks.delivery(account_id=row.account_id, generation_id=row.id, url=row.webhook_url, body=body)

    async def GetBalance(self, request, context) -> generation_pb2.GetBalanceResponse:
        account_id = call_context.current().principal.account_id
        now = utcnow()
        start = month_start(now)
        await self._usage_log.flush()  # the figures include the request just made
        wallet = await self._ledger.wallet(account_id)
        async with self._sessions() as session:
            requests, input_tokens, output_tokens = (await session.exec(
                select(func.count(), func.coalesce(func.sum(UsageRow.input_tokens), 0), func.coalesce(func.sum(UsageRow.output_tokens), 0))
                .where(UsageRow.account_id == account_id, UsageRow.created_at >= start)
            )).one()
        spent = await self._ledger.charged_since(account_id, start)
        return generation_pb2.GetBalanceResponse(
            success=True,
            balance=generation_pb2.AccountBalance(
                remaining=usd(wallet.balance_nano), remaining_nano_usd=wallet.balance_nano,
                reserved=usd(wallet.reserved_nano), reserved_nano_usd=wallet.reserved_nano, currency="USD",
            ),
            usage=generation_pb2.MonthUsage(
                month=month_of(now), requests=int(requests), generations=await self._logs.count_since(account_id, start),
                input_tokens=int(input_tokens), output_tokens=int(output_tokens),
                total_tokens=int(input_tokens) + int(output_tokens), spent_usd=usd(spent), spent_nano_usd=spent,
            ),
        )

    async def ListTemplates(self, request, context) -> generation_pb2.ListTemplatesResponse:
        return generation_pb2.ListTemplatesResponse(success=True, templates=[
            generation_pb2.Template(
                code=t.code, name=t.name, description=t.description, category=t.category,
                options=[_option(o) for o in t.options],
            )
            for t in self._catalogue.all()
        ])

    async def ListGenerationLogs(self, request, context) -> generation_pb2.ListGenerationLogsResponse:
        _refuse_nul(request, ("request_id", "template"))
        limit = request.limit if request.HasField("limit") else 50
        if not 1 <= limit <= 100:
            raise invalid_request("limit must be between 1 and 100.", "limit")
        if request.offset < 0:
            raise invalid_request("offset must not be negative.", "offset")
        start = parse_bound(request.start_date, "start_date", end=False)
        end = parse_bound(request.end_date, "end_date", end=True)
        if start is not None and end is not None and start >= end:
            raise invalid_request("start_date must be before end_date.", "start_date")
        where = LogFilter(
            account_id=call_context.current().principal.account_id, batch_id=request.request_id,
            template=request.template, start=start, end=end,
        )
        rows, total = await self._logs.page(where, limit=limit, offset=request.offset)
        return generation_pb2.ListGenerationLogsResponse(
            success=True,
            logs=[
                generation_pb2.GenerationLog(
                    id=r.id, request_id=r.batch_id, template=r.template, model=r.model, prompt=r.prompt, response=r.response,
                    input_tokens=r.input_tokens, output_tokens=r.output_tokens, total_tokens=r.input_tokens + r.output_tokens,
                    cost_usd=usd(r.cost_nano), cost_nano_usd=r.cost_nano, generation_time_ms=r.generation_time_ms,
                    webhook_url=r.webhook_url, webhook_status=r.webhook_status, created_at=timestamp_of(r.created_at),
                )
                for r in rows
            ],
            pagination=generation_pb2.Pagination(
                limit=limit, offset=request.offset, total=total, has_more=request.offset + len(rows) < total,
            ),
        )

    async def GetWebhookSecret(self, request, context) -> generation_pb2.GetWebhookSecretResponse:
        secret = await self._webhooks.secret_for(call_context.current().principal.account_id)
        return generation_pb2.GetWebhookSecretResponse(success=True, secret=secret)

    async def RotateWebhookSecret(self, request, context) -> generation_pb2.RotateWebhookSecretResponse:
        secret = await self._webhooks.rotate_secret(call_context.current().principal.account_id)
        return generation_pb2.RotateWebhookSecretResponse(success=True, secret=secret)


def _refuse_nul(request, fields: tuple[str, ...]) -> None:
    """PostgreSQL cannot store a NUL character in text: refuse it up front (before anything is
    generated or charged), on every database alike, rather than fail half way through."""
    for name in fields:
        if "\x00" in getattr(request, name):
            raise invalid_request(f"{name} must not contain NUL characters.", name)


def _nul_in(value, where: str) -> str | None:
    """The path of the first string (key or value) in a JSON value that holds a NUL, or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}"
            if "\x00" in key:
                return where
            if (found := _nul_in(item, inner)) is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (found := _nul_in(item, f"{where}[{i}]")) is not None:
                return found
    return None


def _option(option) -> generation_pb2.TemplateOption:
    shown = generation_pb2.TemplateOption(
        name=option.name, type=option.type, description=option.description, values=list(option.values),
        required=option.required,
    )
    if option.default is not None:
        json_format.ParseDict(option.default, shown.default)
    if option.minimum is not None:
        shown.min = option.minimum
    if option.maximum is not None:
        shown.max = option.maximum
    if option.max_length is not None:
        shown.max_length = option.max_length
    return shown
