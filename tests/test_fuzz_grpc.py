"""Fuzz every gRPC method (from the service descriptors) over real gRPC, on SQLite and PostgreSQL.

For each call: never INTERNAL/UNKNOWN (a client's mistake is INVALID_ARGUMENT, NOT_FOUND, …) and no
internal detail in the status message.
"""

from __future__ import annotations

import grpc
import pytest

from tests import fuzz

METHODS = fuzz.grpc_methods()
fuzzed = fuzz.fuzzed_gateway_fixture()


@pytest.fixture(scope="module")
def channel(fuzzed):
    gw, _ = fuzzed
    with grpc.insecure_channel(gw.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch


def call(channel, method: fuzz.GrpcMethod, case: fuzz.GrpcCase, key: str):
    metadata = [("authorization", f"Bearer {key}")] if case.key else []
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(method.path)(case.data, metadata=metadata, timeout=30):
                pass
        else:
            channel.unary_unary(method.path)(case.data, metadata=metadata, timeout=30)
    except grpc.RpcError as err:
        return err.code(), err.details()
    return grpc.StatusCode.OK, None


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_fuzz_method(fuzzed, channel, method):
    gw, ids = fuzzed
    fuzz.sweep(fuzz.grpc_cases(method, ids), lambda c: fuzz.grpc_problems(*call(channel, method, c, gw.admin_key)))
