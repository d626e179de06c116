"""An in-process stand-in for a grpc.aio channel, for the embedded mode (edge and services in one process).

One gRPC hop costs about a millisecond of CPU in Python (DESIGN.md §6) for serialization and transport
alone. When the edge and the services share a process, this channel hands the request message straight
to the very handlers the gRPC server runs, wrapped by the very same interceptor: authentication,
scopes, limits and errors are identical, only the wire is skipped. Errors surface as
grpc.aio.AioRpcError with the same code, details and trailers a real channel would give. A call's
metadata is a tuple of (key, value) pairs, which iterates as grpc.aio.Metadata does (building
that object for every call showed in the benchmark).
"""

from __future__ import annotations

import asyncio
from collections import namedtuple

import grpc

_CallDetails = namedtuple("_CallDetails", "method invocation_metadata timeout wait_for_ready compression")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata or ())


class _Context:
    """The parts of grpc.aio.ServicerContext our interceptor and servicers use."""

    def __init__(self, metadata) -> None:
        self._metadata = tuple(metadata or ())
        self.initial_metadata: tuple = ()
        self.trailing_metadata: tuple = ()

    def invocation_metadata(self):
        return self._metadata

    async def send_initial_metadata(self, metadata) -> None:
        self.initial_metadata = tuple(metadata)

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing_metadata = tuple(metadata)

    async def abort(self, code, details="", trailing_metadata=()):
        raise _Abort(code, details, trailing_metadata)

    def peer(self) -> str:
        return "local"

    def cancelled(self) -> bool:
        return False


def _rpc_error(context: _Context, abort: _Abort) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        abort.code,
        grpc.aio.Metadata(*context.initial_metadata),
        grpc.aio.Metadata(*abort.trailing_metadata),
        details=abort.details,
    )


class _UnaryCall:
    def __init__(self, handler, request, metadata) -> None:
        self._context = _Context(metadata)
        self._handler = handler
        self._request = request

    def __await__(self):
        return self._run().__await__()

    async def _run(self):
        try:
            return await self._handler.unary_unary(self._request, self._context)
        except _Abort as abort:
            raise _rpc_error(self._context, abort) from None

    async def initial_metadata(self):
        return self._context.initial_metadata

    async def trailing_metadata(self):
        return self._context.trailing_metadata


class _StreamCall:
    def __init__(self, handler, request, metadata) -> None:
        self._context = _Context(metadata)
        self._stream = handler.unary_stream(request, self._context)

    async def read(self):
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return grpc.aio.EOF
        except _Abort as abort:
            raise _rpc_error(self._context, abort) from None

    async def initial_metadata(self):
        return self._context.initial_metadata

    def cancel(self) -> bool:
        # Closing the generator runs its finally blocks: the servicer stops and the upstream
        # request is cancelled, as when a real client cancels the call.
        asyncio.ensure_future(self._stream.aclose())
        return True


class LocalChannel:
    """Quacks like the grpc.aio.Channel methods the edge uses."""

    def __init__(self, interceptors: list[grpc.aio.ServerInterceptor]) -> None:
        self._raw: dict[str, grpc.RpcMethodHandler] = {}
        self._interceptors = interceptors
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    # The generated add_*Servicer_to_server functions call these two, as on a grpc.aio.Server.
    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        for name, handler in handlers.items():
            self._raw[f"/{service}/{name}"] = handler

    async def prepare(self) -> None:
        """Wrap every handler in the interceptors, once, as the server does per call."""
        for method, handler in self._raw.items():
            for interceptor in self._interceptors:
                async def continuation(_details, handler=handler):
                    return handler

                handler = await interceptor.intercept_service(continuation, _CallDetails(method, (), None, None, None))
            self._handlers[method] = handler

    def _handler(self, method: str) -> grpc.RpcMethodHandler:
        handler = self._handlers.get(method)
        if handler is None:
            raise RuntimeError(f"{method} is not served by this process")
        return handler

    def unary_unary(self, method: str, request_serializer=None, response_deserializer=None, **_):
        handler = self._handler(method)
        return lambda request, metadata=None, timeout=None: _UnaryCall(handler, request, metadata)

    def unary_stream(self, method: str, request_serializer=None, response_deserializer=None, **_):
        handler = self._handler(method)
        return lambda request, metadata=None, timeout=None: _StreamCall(handler, request, metadata)

    async def close(self) -> None:
        pass
