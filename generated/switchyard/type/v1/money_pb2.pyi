from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Money(_message.Message):
    __slots__ = ("nano_usd",)
    NANO_USD_FIELD_NUMBER: _ClassVar[int]
    nano_usd: int
    def __init__(self, nano_usd: _Optional[int] = ...) -> None: ...
