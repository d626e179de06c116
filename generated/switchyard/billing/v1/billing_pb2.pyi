import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchyard.type.v1 import method_policy_pb2 as _method_policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("id", "name", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeySpend(_message.Message):
    __slots__ = ("key_id", "month", "spent_nano_usd", "spent_usd", "spend_cap_nano_usd", "spend_cap_usd")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    SPENT_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_CAP_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_CAP_USD_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    month: str
    spent_nano_usd: int
    spent_usd: float
    spend_cap_nano_usd: int
    spend_cap_usd: float
    def __init__(self, key_id: _Optional[str] = ..., month: _Optional[str] = ..., spent_nano_usd: _Optional[int] = ..., spent_usd: _Optional[float] = ..., spend_cap_nano_usd: _Optional[int] = ..., spend_cap_usd: _Optional[float] = ...) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("account_id", "balance_nano_usd", "balance_usd", "reserved_nano_usd", "available_nano_usd", "available_usd", "key", "low_balance_threshold_nano_usd", "low_balance_threshold_usd", "low_balance")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    BALANCE_USD_FIELD_NUMBER: _ClassVar[int]
    RESERVED_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_USD_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LOW_BALANCE_THRESHOLD_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    LOW_BALANCE_THRESHOLD_USD_FIELD_NUMBER: _ClassVar[int]
    LOW_BALANCE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    balance_nano_usd: int
    balance_usd: float
    reserved_nano_usd: int
    available_nano_usd: int
    available_usd: float
    key: KeySpend
    low_balance_threshold_nano_usd: int
    low_balance_threshold_usd: float
    low_balance: bool
    def __init__(self, account_id: _Optional[str] = ..., balance_nano_usd: _Optional[int] = ..., balance_usd: _Optional[float] = ..., reserved_nano_usd: _Optional[int] = ..., available_nano_usd: _Optional[int] = ..., available_usd: _Optional[float] = ..., key: _Optional[_Union[KeySpend, _Mapping]] = ..., low_balance_threshold_nano_usd: _Optional[int] = ..., low_balance_threshold_usd: _Optional[float] = ..., low_balance: _Optional[bool] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("name", "account_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    account_id: str
    def __init__(self, name: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class TopUpWalletRequest(_message.Message):
    __slots__ = ("account_id", "amount_usd", "amount_nano_usd", "note")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_USD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    amount_usd: str
    amount_nano_usd: int
    note: str
    def __init__(self, account_id: _Optional[str] = ..., amount_usd: _Optional[str] = ..., amount_nano_usd: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class TopUpWalletResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class SetKeySpendCapRequest(_message.Message):
    __slots__ = ("key_id", "spend_cap_usd", "spend_cap_nano_usd", "clear")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SPEND_CAP_USD_FIELD_NUMBER: _ClassVar[int]
    SPEND_CAP_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    spend_cap_usd: str
    spend_cap_nano_usd: int
    clear: bool
    def __init__(self, key_id: _Optional[str] = ..., spend_cap_usd: _Optional[str] = ..., spend_cap_nano_usd: _Optional[int] = ..., clear: _Optional[bool] = ...) -> None: ...

class SetKeySpendCapResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeySpend
    def __init__(self, key: _Optional[_Union[KeySpend, _Mapping]] = ...) -> None: ...

class GetWalletRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWalletResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("id", "account_id", "kind", "amount_nano_usd", "amount_usd", "key_id", "request_id", "note", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_USD_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: int
    account_id: str
    kind: str
    amount_nano_usd: int
    amount_usd: float
    key_id: str
    request_id: str
    note: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., account_id: _Optional[str] = ..., kind: _Optional[str] = ..., amount_nano_usd: _Optional[int] = ..., amount_usd: _Optional[float] = ..., key_id: _Optional[str] = ..., request_id: _Optional[str] = ..., note: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListLedgerEntriesRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLedgerEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("request_id", "key_id", "account_id", "model", "provider", "upstream_model", "endpoint", "input_tokens", "output_tokens", "cost_nano_usd", "cost_usd", "usage_estimated", "latency_ms", "time_to_first_token_ms", "status", "error_code", "streamed", "create_time", "template")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    USAGE_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    key_id: str
    account_id: str
    model: str
    provider: str
    upstream_model: str
    endpoint: str
    input_tokens: int
    output_tokens: int
    cost_nano_usd: int
    cost_usd: float
    usage_estimated: bool
    latency_ms: int
    time_to_first_token_ms: int
    status: str
    error_code: str
    streamed: bool
    create_time: _timestamp_pb2.Timestamp
    template: str
    def __init__(self, request_id: _Optional[str] = ..., key_id: _Optional[str] = ..., account_id: _Optional[str] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., upstream_model: _Optional[str] = ..., endpoint: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nano_usd: _Optional[int] = ..., cost_usd: _Optional[float] = ..., usage_estimated: _Optional[bool] = ..., latency_ms: _Optional[int] = ..., time_to_first_token_ms: _Optional[int] = ..., status: _Optional[str] = ..., error_code: _Optional[str] = ..., streamed: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., template: _Optional[str] = ...) -> None: ...

class ListUsageRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "key_id", "model", "status", "start_time", "end_time", "template", "account_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    key_id: str
    model: str
    status: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    template: str
    account_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., key_id: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., template: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...

class ListUsageResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetUsageSummaryRequest(_message.Message):
    __slots__ = ("account_id", "start_time", "end_time", "key_id", "model", "status")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    key_id: str
    model: str
    status: str
    def __init__(self, account_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("day", "model", "requests", "errors", "input_tokens", "output_tokens", "cost_nano_usd", "cost_usd")
    DAY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    day: str
    model: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_nano_usd: int
    cost_usd: float
    def __init__(self, day: _Optional[str] = ..., model: _Optional[str] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nano_usd: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class GetUsageSummaryResponse(_message.Message):
    __slots__ = ("buckets",)
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    def __init__(self, buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AccountSummary(_message.Message):
    __slots__ = ("account", "wallet")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    account: Account
    wallet: Wallet
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountSummary]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetLowBalanceThresholdRequest(_message.Message):
    __slots__ = ("account_id", "threshold_usd", "threshold_nano_usd", "clear")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_USD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    threshold_usd: str
    threshold_nano_usd: int
    clear: bool
    def __init__(self, account_id: _Optional[str] = ..., threshold_usd: _Optional[str] = ..., threshold_nano_usd: _Optional[int] = ..., clear: _Optional[bool] = ...) -> None: ...

class SetLowBalanceThresholdResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...
