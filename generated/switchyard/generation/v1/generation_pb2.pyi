import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchyard.type.v1 import method_policy_pb2 as _method_policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "template", "options", "max_tokens", "model", "request_id", "webhook_url")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    template: str
    options: _struct_pb2.Struct
    max_tokens: int
    model: str
    request_id: str
    webhook_url: str
    def __init__(self, prompt: _Optional[str] = ..., template: _Optional[str] = ..., options: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., max_tokens: _Optional[int] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("success", "data", "usage", "balance")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    data: GenerateResult
    usage: GenerationUsage
    balance: BalanceSummary
    def __init__(self, success: _Optional[bool] = ..., data: _Optional[_Union[GenerateResult, _Mapping]] = ..., usage: _Optional[_Union[GenerationUsage, _Mapping]] = ..., balance: _Optional[_Union[BalanceSummary, _Mapping]] = ...) -> None: ...

class GenerateResult(_message.Message):
    __slots__ = ("content", "template_used", "generation_id", "request_id", "model", "webhook_status")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_USED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STATUS_FIELD_NUMBER: _ClassVar[int]
    content: str
    template_used: str
    generation_id: str
    request_id: str
    model: str
    webhook_status: str
    def __init__(self, content: _Optional[str] = ..., template_used: _Optional[str] = ..., generation_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., webhook_status: _Optional[str] = ...) -> None: ...

class GenerationUsage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "total_tokens", "cost_usd", "cost_nano_usd")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    cost_nano_usd: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., cost_nano_usd: _Optional[int] = ...) -> None: ...

class BalanceSummary(_message.Message):
    __slots__ = ("remaining", "remaining_nano_usd")
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REMAINING_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    remaining: float
    remaining_nano_usd: int
    def __init__(self, remaining: _Optional[float] = ..., remaining_nano_usd: _Optional[int] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("success", "balance", "usage")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    balance: AccountBalance
    usage: MonthUsage
    def __init__(self, success: _Optional[bool] = ..., balance: _Optional[_Union[AccountBalance, _Mapping]] = ..., usage: _Optional[_Union[MonthUsage, _Mapping]] = ...) -> None: ...

class AccountBalance(_message.Message):
    __slots__ = ("remaining", "remaining_nano_usd", "reserved", "reserved_nano_usd", "currency")
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REMAINING_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    remaining: float
    remaining_nano_usd: int
    reserved: float
    reserved_nano_usd: int
    currency: str
    def __init__(self, remaining: _Optional[float] = ..., remaining_nano_usd: _Optional[int] = ..., reserved: _Optional[float] = ..., reserved_nano_usd: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class MonthUsage(_message.Message):
    __slots__ = ("month", "requests", "generations", "input_tokens", "output_tokens", "total_tokens", "spent_usd", "spent_nano_usd")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SPENT_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    month: str
    requests: int
    generations: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    spent_usd: float
    spent_nano_usd: int
    def __init__(self, month: _Optional[str] = ..., requests: _Optional[int] = ..., generations: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., spent_usd: _Optional[float] = ..., spent_nano_usd: _Optional[int] = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("success", "templates")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    success: bool
    templates: _containers.RepeatedCompositeFieldContainer[Template]
    def __init__(self, success: _Optional[bool] = ..., templates: _Optional[_Iterable[_Union[Template, _Mapping]]] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("code", "name", "description", "category", "options")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    description: str
    category: str
    options: _containers.RepeatedCompositeFieldContainer[TemplateOption]
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., options: _Optional[_Iterable[_Union[TemplateOption, _Mapping]]] = ...) -> None: ...

class TemplateOption(_message.Message):
    __slots__ = ("name", "type", "description", "values", "default", "required", "min", "max", "max_length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    values: _containers.RepeatedScalarFieldContainer[str]
    default: _struct_pb2.Value
    required: bool
    min: float
    max: float
    max_length: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., default: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., required: _Optional[bool] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., max_length: _Optional[int] = ...) -> None: ...

class ListGenerationLogsRequest(_message.Message):
    __slots__ = ("limit", "offset", "request_id", "template", "start_date", "end_date")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    request_id: str
    template: str
    start_date: str
    end_date: str
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., request_id: _Optional[str] = ..., template: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ...) -> None: ...

class ListGenerationLogsResponse(_message.Message):
    __slots__ = ("success", "logs", "pagination")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    success: bool
    logs: _containers.RepeatedCompositeFieldContainer[GenerationLog]
    pagination: Pagination
    def __init__(self, success: _Optional[bool] = ..., logs: _Optional[_Iterable[_Union[GenerationLog, _Mapping]]] = ..., pagination: _Optional[_Union[Pagination, _Mapping]] = ...) -> None: ...

class GenerationLog(_message.Message):
    __slots__ = ("id", "request_id", "template", "model", "prompt", "response", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "cost_nano_usd", "generation_time_ms", "webhook_url", "webhook_status", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    template: str
    model: str
    prompt: str
    response: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    cost_nano_usd: int
    generation_time_ms: int
    webhook_url: str
    webhook_status: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., template: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[str] = ..., response: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., cost_nano_usd: _Optional[int] = ..., generation_time_ms: _Optional[int] = ..., webhook_url: _Optional[str] = ..., webhook_status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Pagination(_message.Message):
    __slots__ = ("limit", "offset", "total", "has_more")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    total: int
    has_more: bool
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ..., total: _Optional[int] = ..., has_more: _Optional[bool] = ...) -> None: ...

class GetWebhookSecretRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWebhookSecretResponse(_message.Message):
    __slots__ = ("success", "secret")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    success: bool
    secret: str
    def __init__(self, success: _Optional[bool] = ..., secret: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("success", "secret")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    success: bool
    secret: str
    def __init__(self, success: _Optional[bool] = ..., secret: _Optional[str] = ...) -> None: ...
