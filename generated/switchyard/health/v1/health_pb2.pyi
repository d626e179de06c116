import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchyard.type.v1 import method_policy_pb2 as _method_policy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetLlmHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLlmHealthResponse(_message.Message):
    __slots__ = ("status", "checked_at", "providers")
    class ProvidersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ProviderHealth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ProviderHealth, _Mapping]] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    status: str
    checked_at: _timestamp_pb2.Timestamp
    providers: _containers.MessageMap[str, ProviderHealth]
    def __init__(self, status: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., providers: _Optional[_Mapping[str, ProviderHealth]] = ...) -> None: ...

class ProviderHealth(_message.Message):
    __slots__ = ("status", "detail", "latency_ms")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    status: str
    detail: str
    latency_ms: int
    def __init__(self, status: _Optional[str] = ..., detail: _Optional[str] = ..., latency_ms: _Optional[int] = ...) -> None: ...
