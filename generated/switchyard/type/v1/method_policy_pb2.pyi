from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
METHOD_POLICY_FIELD_NUMBER: _ClassVar[int]
method_policy: _descriptor.FieldDescriptor

class MethodPolicy(_message.Message):
    __slots__ = ("scope", "billable")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_FIELD_NUMBER: _ClassVar[int]
    scope: str
    billable: bool
    def __init__(self, scope: _Optional[str] = ..., billable: _Optional[bool] = ...) -> None: ...
