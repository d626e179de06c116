from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_REQUEST: _ClassVar[ErrorReason]
    ERROR_REASON_MISSING_API_KEY: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_API_KEY: _ClassVar[ErrorReason]
    ERROR_REASON_INSUFFICIENT_BALANCE: _ClassVar[ErrorReason]
    ERROR_REASON_SPEND_CAP_REACHED: _ClassVar[ErrorReason]
    ERROR_REASON_INSUFFICIENT_SCOPE: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_METHOD_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_PAYLOAD_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_RATE_LIMITED: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL_ERROR: _ClassVar[ErrorReason]
    ERROR_REASON_SERVICE_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_UPSTREAM_ERROR: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_TEMPLATE: _ClassVar[ErrorReason]
    ERROR_REASON_BILLING_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_MODEL_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_HEADERS_TOO_LARGE: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_REQUEST: ErrorReason
ERROR_REASON_MISSING_API_KEY: ErrorReason
ERROR_REASON_INVALID_API_KEY: ErrorReason
ERROR_REASON_INSUFFICIENT_BALANCE: ErrorReason
ERROR_REASON_SPEND_CAP_REACHED: ErrorReason
ERROR_REASON_INSUFFICIENT_SCOPE: ErrorReason
ERROR_REASON_NOT_FOUND: ErrorReason
ERROR_REASON_METHOD_NOT_ALLOWED: ErrorReason
ERROR_REASON_PAYLOAD_TOO_LARGE: ErrorReason
ERROR_REASON_RATE_LIMITED: ErrorReason
ERROR_REASON_INTERNAL_ERROR: ErrorReason
ERROR_REASON_SERVICE_UNAVAILABLE: ErrorReason
ERROR_REASON_MODEL_NOT_FOUND: ErrorReason
ERROR_REASON_UPSTREAM_ERROR: ErrorReason
ERROR_REASON_INVALID_TEMPLATE: ErrorReason
ERROR_REASON_BILLING_FAILED: ErrorReason
ERROR_REASON_MODEL_NOT_ALLOWED: ErrorReason
ERROR_REASON_HEADERS_TOO_LARGE: ErrorReason
PRESENTATION_FIELD_NUMBER: _ClassVar[int]
presentation: _descriptor.FieldDescriptor

class ErrorReasonPresentation(_message.Message):
    __slots__ = ("http_status", "grpc_code")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    GRPC_CODE_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    grpc_code: int
    def __init__(self, http_status: _Optional[int] = ..., grpc_code: _Optional[int] = ...) -> None: ...
