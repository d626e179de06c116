from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Audience(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIENCE_UNSPECIFIED: _ClassVar[Audience]
    AUDIENCE_ACCOUNT: _ClassVar[Audience]
    AUDIENCE_ACCOUNT_ADMIN: _ClassVar[Audience]
    AUDIENCE_OPERATOR: _ClassVar[Audience]
    AUDIENCE_PUBLIC: _ClassVar[Audience]
AUDIENCE_UNSPECIFIED: Audience
AUDIENCE_ACCOUNT: Audience
AUDIENCE_ACCOUNT_ADMIN: Audience
AUDIENCE_OPERATOR: Audience
AUDIENCE_PUBLIC: Audience
METHOD_POLICY_FIELD_NUMBER: _ClassVar[int]
method_policy: _descriptor.FieldDescriptor

class MethodPolicy(_message.Message):
    __slots__ = ("scope", "billable", "audience", "target")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    scope: str
    billable: bool
    audience: Audience
    target: TargetAccount
    def __init__(self, scope: _Optional[str] = ..., billable: _Optional[bool] = ..., audience: _Optional[_Union[Audience, str]] = ..., target: _Optional[_Union[TargetAccount, _Mapping]] = ...) -> None: ...

class TargetAccount(_message.Message):
    __slots__ = ("account_field", "key_field")
    ACCOUNT_FIELD_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_FIELD_NUMBER: _ClassVar[int]
    account_field: str
    key_field: str
    def __init__(self, account_field: _Optional[str] = ..., key_field: _Optional[str] = ...) -> None: ...
