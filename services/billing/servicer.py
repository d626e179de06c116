"""BillingService: accounts, wallets, spend caps, the ledger and the usage log."""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import update
from sqlmodel import select

from services import call_context
from services.auth.store import KeyStore
from services.auth.verifier import KeyVerifier
from services.billing.ledger import Ledger, amount_in_range, month_of, parse_usd, usd
from services.billing.usage_log import UsageLog
from services.billing.usage_summary import default_window, summarize
from services.errors import Reason, ServiceError, invalid_request
from services.storage.database import insert_ignore, timestamp_of, utcnow
from services.storage.tables import Account, AccountSettingsRow, ApiKeyRecord, UsageRow
from switchyard.billing.v1 import billing_pb2, billing_pb2_grpc

_ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9_-]{1,35}")


def _page_size(value: int) -> int:
    if value < 0 or value > 100:
        raise invalid_request("page_size must be between 1 and 100.", "page_size")
    return value or 50


def _token(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def _before(token: str) -> int | None:
    if not token:
        return None
    try:
        before = int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except ValueError:
        before = 0
    # Row ids are positive int64s; anything else did not come from us (and would overflow the query).
    if not 0 < before < 2**63:
        raise invalid_request("page_token is not one this API returned.", "page_token")
    return before


def _amount(oneof_owner, usd_field: str, nano_field: str, what: str, *, positive: bool = False) -> int:
    """The amount of a USD-or-nano oneof, range-checked (never negative, at most MAX_AMOUNT_NANO)."""
    which = oneof_owner.WhichOneof(what)
    if which == usd_field:
        try:
            amount = parse_usd(getattr(oneof_owner, usd_field))
        except ValueError as exc:
            raise invalid_request(f"{usd_field}: {exc}.", usd_field) from None
    elif which == nano_field:
        amount = getattr(oneof_owner, nano_field)
    else:
        raise invalid_request(f"{usd_field} (or {nano_field}) is required.", usd_field)
    return amount_in_range(amount, which, allow_zero=not positive)


def _usage_window(request) -> tuple[datetime | None, datetime | None]:
    """The status filter checked and the (start_time, end_time) of a usage query, None where unset."""
    if request.status and request.status not in ("ok", "error"):
        raise invalid_request("status must be ok or error.", "status")
    start = request.start_time.ToDatetime(tzinfo=timezone.utc) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(tzinfo=timezone.utc) if request.HasField("end_time") else None
    _in_order(start, end)
    return start, end


def _in_order(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise invalid_request("start_time must be before end_time.", "start_time")


def _clears(request, oneof: str, usd_field: str, what: str) -> bool:
    """Whether a set-or-clear request clears. `clear: false` is a oneof member too (proto3 marks it
    set), but it asks for nothing: refused rather than taken as a clear, which would lift a limit."""
    if request.WhichOneof(oneof) != "clear":
        return False
    if not request.clear:
        raise invalid_request(f"clear must be true to remove the {what}; to set one, send {usd_field}.", "clear")
    return True


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, ledger: Ledger, usage_log: UsageLog, store: KeyStore, sessions, verifier: KeyVerifier) -> None:
        self._ledger = ledger
        self._usage_log = usage_log
        self._store = store
        self._sessions = sessions
        self._verifier = verifier

    async def _wallet(self, account_id: str) -> billing_pb2.Wallet:
        state = await self._ledger.wallet(account_id)
        available = state.balance_nano - state.reserved_nano
        wallet = billing_pb2.Wallet(
            account_id=account_id, balance_nano_usd=state.balance_nano, balance_usd=usd(state.balance_nano),
            reserved_nano_usd=state.reserved_nano, available_nano_usd=available, available_usd=usd(available),
        )
        async with self._sessions() as session:
            settings = await session.get(AccountSettingsRow, account_id)
        if settings is not None and settings.low_balance_threshold_nano is not None:
            threshold = settings.low_balance_threshold_nano
            wallet.low_balance_threshold_nano_usd, wallet.low_balance_threshold_usd = threshold, usd(threshold)
            wallet.low_balance = available < threshold
        return wallet

    async def _key_spend(self, key_id: str, cap: int | None) -> billing_pb2.KeySpend:
        month = month_of(utcnow())
        spent = await self._ledger.key_spent(key_id, month)
        spend = billing_pb2.KeySpend(key_id=key_id, month=month, spent_nano_usd=spent, spent_usd=usd(spent))
        if cap is not None:
            spend.spend_cap_nano_usd, spend.spend_cap_usd = cap, usd(cap)
        return spend

    async def CreateAccount(self, request, context) -> billing_pb2.CreateAccountResponse:
        name = request.name.strip()
        if not name or len(name) > 200:
            raise invalid_request("name is required and must be at most 200 characters.", "name")
        account_id = request.account_id or f"acct_{secrets.token_hex(8)}"
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise invalid_request("account_id must look like acct_ followed by letters, digits, '-' or '_'.", "account_id")
        async with self._sessions() as session:
            if await session.get(Account, account_id) is not None:
                raise ServiceError(Reason.ERROR_REASON_INVALID_REQUEST, f"Account {account_id} already exists.", metadata={"field": "account_id"})
        await self._store.ensure_account(account_id, name)
        await self._ledger.ensure_wallet(account_id)
        async with self._sessions() as session:
            account = await session.get(Account, account_id)
        return billing_pb2.CreateAccountResponse(account=billing_pb2.Account(id=account.id, name=account.name, create_time=timestamp_of(account.created_at)))

    async def TopUpWallet(self, request, context) -> billing_pb2.TopUpWalletResponse:
        if not request.account_id:
            raise invalid_request("account_id is required.", "account_id")
        async with self._sessions() as session:
            if await session.get(Account, request.account_id) is None:
                raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"No account {request.account_id!r}.", metadata={"resource": "account"})
        amount = _amount(request, "amount_usd", "amount_nano_usd", "amount", positive=True)
        caller = call_context.current().principal
        # The account's own ledger is read by its admins: another account's key id stays out of it.
        note = request.note or (f"top-up by {caller.key_id}" if caller.account_id == request.account_id else "top-up")
        await self._ledger.top_up(request.account_id, amount, note, field=request.WhichOneof("amount"))
        return billing_pb2.TopUpWalletResponse(wallet=await self._wallet(request.account_id))

    async def SetKeySpendCap(self, request, context) -> billing_pb2.SetKeySpendCapResponse:
        cap = None if _clears(request, "cap", "spend_cap_usd", "spend cap") else _amount(request, "spend_cap_usd", "spend_cap_nano_usd", "cap")
        if cap is not None and cap < 0:
            raise invalid_request("A spend cap cannot be negative.", "spend_cap_usd")
        # The interceptor found the key and checked the caller may act on its account.
        async with self._sessions() as session:
            await session.exec(update(ApiKeyRecord).where(ApiKeyRecord.id == request.key_id).values(spend_cap_nano=cap))
            await session.commit()
        # Admission holds against the cached key's cap and asks the database only when that refuses,
        # so a lowered cap would go unseen until the cache expired: this process applies it at once.
        self._verifier.forget(request.key_id)
        return billing_pb2.SetKeySpendCapResponse(key=await self._key_spend(request.key_id, cap))

    async def GetWallet(self, request, context) -> billing_pb2.GetWalletResponse:
        caller = call_context.current().principal
        wallet = await self._wallet(caller.account_id)
        # The cap as stored now: the verified-key cache may be a second old, and enforcement already
        # reads a changed cap at once (Meter.admit_amount).
        _, cap = await self._ledger.spend_cap_of(caller.key_id)
        wallet.key.CopyFrom(await self._key_spend(caller.key_id, cap))
        return billing_pb2.GetWalletResponse(wallet=wallet)

    async def ListLedgerEntries(self, request, context) -> billing_pb2.ListLedgerEntriesResponse:
        account_id = call_context.current().account_id
        size = _page_size(request.page_size)
        rows = await self._ledger.entries(account_id, page_size=size, before_id=_before(request.page_token))
        entries = [
            billing_pb2.LedgerEntry(
                id=r.id, account_id=r.account_id, kind=r.kind, amount_nano_usd=r.amount_nano, amount_usd=usd(r.amount_nano),
                key_id=r.key_id, request_id=r.request_id, note=r.note, create_time=timestamp_of(r.created_at),
            )
            for r in rows[:size]
        ]
        return billing_pb2.ListLedgerEntriesResponse(entries=entries, next_page_token=_token(rows[size - 1].id) if len(rows) > size else "")

    async def ListUsage(self, request, context) -> billing_pb2.ListUsageResponse:
        account_id = call_context.current().account_id
        size = _page_size(request.page_size)
        start, end = _usage_window(request)
        await self._usage_log.flush()  # a client reading its log right after a call sees that call
        query = select(UsageRow).where(UsageRow.account_id == account_id)
        if request.key_id:
            query = query.where(UsageRow.key_id == request.key_id)
        if request.model:
            query = query.where(UsageRow.model == request.model)
        if request.status:
            query = query.where(UsageRow.status == request.status)
        if request.template:
            query = query.where(UsageRow.template == request.template)
        if start is not None:
            query = query.where(UsageRow.created_at >= start)
        if end is not None:
            query = query.where(UsageRow.created_at < end)
        before = _before(request.page_token)
        if before is not None:
            query = query.where(UsageRow.id < before)
        async with self._sessions() as session:
            rows = list((await session.exec(query.order_by(UsageRow.id.desc()).limit(size + 1))).all())
        records = [
            billing_pb2.UsageRecord(
                request_id=r.request_id, key_id=r.key_id, account_id=r.account_id, model=r.model, provider=r.provider,
                upstream_model=r.upstream_model, endpoint=r.endpoint, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                cost_nano_usd=r.cost_nano, cost_usd=usd(r.cost_nano), usage_estimated=r.usage_estimated, latency_ms=r.latency_ms,
                time_to_first_token_ms=r.ttft_ms, status=r.status, error_code=r.error_code, streamed=r.streamed,
                create_time=timestamp_of(r.created_at), template=r.template,
            )
            for r in rows[:size]
        ]
        return billing_pb2.ListUsageResponse(records=records, next_page_token=_token(rows[size - 1].id) if len(rows) > size else "")

    async def GetUsageSummary(self, request, context) -> billing_pb2.GetUsageSummaryResponse:
        start, end = _usage_window(request)
        end = end or utcnow()
        start = start or default_window(end)[0]
        _in_order(start, end)
        if end - start > timedelta(days=400):
            raise invalid_request("The window is at most 400 days.", "start_time")
        await self._usage_log.flush()  # the charts include the call just made
        buckets = await summarize(
            self._sessions, call_context.current().account_id, start, end,
            key_id=request.key_id, model=request.model, status=request.status,
        )
        return billing_pb2.GetUsageSummaryResponse(buckets=[
            billing_pb2.UsageBucket(
                day=b["day"], model=b["model"], requests=b["requests"], errors=b["errors"], input_tokens=b["input_tokens"],
                output_tokens=b["output_tokens"], cost_nano_usd=b["cost_nano"], cost_usd=usd(b["cost_nano"]),
            )
            for b in buckets
        ])

    async def SetLowBalanceThreshold(self, request, context) -> billing_pb2.SetLowBalanceThresholdResponse:
        account_id = call_context.current().account_id
        threshold = (None if _clears(request, "threshold", "threshold_usd", "low-balance threshold")
                     else _amount(request, "threshold_usd", "threshold_nano_usd", "threshold"))
        if threshold is not None and not 0 <= threshold <= 10**18:
            raise invalid_request("threshold must be between 0 and 1,000,000,000 USD.", "threshold_usd")
        async with self._sessions() as session:
            if await session.get(Account, account_id) is None:
                raise ServiceError(Reason.ERROR_REASON_NOT_FOUND, f"No account {account_id!r}.", metadata={"resource": "account"})
            # The account's first setting creates its row, and concurrent first calls (or replicas)
            # race to: insert-or-ignore, then update the one row that exists, in one transaction.
            await session.exec(insert_ignore(session, AccountSettingsRow.__table__, {"account_id": account_id}))
            await session.exec(update(AccountSettingsRow).where(AccountSettingsRow.account_id == account_id)
                               .values(low_balance_threshold_nano=threshold))
            await session.commit()
        return billing_pb2.SetLowBalanceThresholdResponse(wallet=await self._wallet(account_id))

    async def ListAccounts(self, request, context) -> billing_pb2.ListAccountsResponse:
        size = _page_size(request.page_size)
        after = ""
        if request.page_token:
            try:
                after = base64.urlsafe_b64decode(request.page_token + "=" * (-len(request.page_token) % 4)).decode()
            except ValueError:
                raise invalid_request("page_token is not one this API returned.", "page_token") from None
        async with self._sessions() as session:
            query = select(Account).where(Account.id > after).order_by(Account.id).limit(size + 1)
            accounts = list((await session.exec(query)).all())
        more = len(accounts) > size
        accounts = accounts[:size]
        summaries = [
            billing_pb2.AccountSummary(
                account=billing_pb2.Account(id=a.id, name=a.name, create_time=timestamp_of(a.created_at)),
                wallet=await self._wallet(a.id),
            )
            for a in accounts
        ]
        token = base64.urlsafe_b64encode(accounts[-1].id.encode()).decode().rstrip("=") if more else ""
        return billing_pb2.ListAccountsResponse(accounts=summaries, next_page_token=token)
