"""The same contract over gRPC, through the generated stubs: auth, scopes, limits, rich errors."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from switchyard.auth.v1 import auth_pb2, auth_pb2_grpc
from switchyard.health.v1 import health_pb2 as sy_health_pb2
from switchyard.health.v1 import health_pb2_grpc as sy_health_pb2_grpc


@pytest.fixture
def channel(gateway):
    with grpc.insecure_channel(gateway.grpc_target) as ch:
        yield ch


def md(key: str | None, **extra) -> list[tuple[str, str]]:
    out = [("authorization", f"Bearer {key}")] if key else []
    return out + list(extra.items())


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    details = [v for k, v in err.trailing_metadata() if k == "grpc-status-details-bin"]
    assert len(details) == 1, "every failure carries exactly one rich status"
    status = status_pb2.Status.FromString(details[0])
    assert status.code == err.code().value[0]
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert info.domain == "switchyard.gateway"
    assert info.metadata["requestId"]
    return info


def test_health_over_grpc_with_rate_limit_metadata(gateway, channel):
    stub = sy_health_pb2_grpc.HealthServiceStub(channel)
    reply, call = stub.GetLlmHealth.with_call(sy_health_pb2.GetLlmHealthRequest(), metadata=md(gateway.admin_key))
    assert reply.status == "ok" and reply.providers["mock"].status == "ok"
    assert reply.checked_at.seconds > 0
    initial = dict(call.initial_metadata())
    assert initial["x-ratelimit-limit"] == "30" and initial["x-ratelimit-remaining"] == "29"
    assert int(initial["x-ratelimit-reset"]) > 0
    assert initial["x-request-id"].startswith("req_")


@pytest.mark.parametrize(
    "key, code, reason",
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY"),
        ("tk_live_" + "a" * 32, grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY"),
    ],
)
def test_authentication_errors(channel, key, code, reason):
    stub = sy_health_pb2_grpc.HealthServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetLlmHealth(sy_health_pb2.GetLlmHealthRequest(), metadata=md(key, **{"x-request-id": "grpc-1"}))
    assert err.value.code() == code
    info = error_info(err.value)
    assert info.reason == reason and info.metadata["requestId"] == "grpc-1"


def test_scope_and_not_found_and_validation(gateway, channel):
    keys = auth_pb2_grpc.AuthServiceStub(channel)
    created = keys.CreateKey(auth_pb2.CreateKeyRequest(name="plain"), metadata=md(gateway.admin_key))
    assert created.key.startswith("tk_live_") and created.api_key.state == auth_pb2.KEY_STATE_ACTIVE

    with pytest.raises(grpc.RpcError) as err:
        keys.ListKeys(auth_pb2.ListKeysRequest(), metadata=md(created.key))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err.value)
    assert info.reason == "INSUFFICIENT_SCOPE" and info.metadata["requiredScope"] == "admin"

    with pytest.raises(grpc.RpcError) as err:
        keys.GetKey(auth_pb2.GetKeyRequest(key_id="key_nope"), metadata=md(gateway.admin_key))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and error_info(err.value).reason == "NOT_FOUND"

    with pytest.raises(grpc.RpcError) as err:
        keys.CreateKey(auth_pb2.CreateKeyRequest(name=""), metadata=md(gateway.admin_key))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(err.value)
    assert info.reason == "INVALID_REQUEST" and info.metadata["field"] == "name"


def test_revocation_over_grpc(gateway, channel):
    keys = auth_pb2_grpc.AuthServiceStub(channel)
    health = sy_health_pb2_grpc.HealthServiceStub(channel)
    created = keys.CreateKey(auth_pb2.CreateKeyRequest(name="short-lived"), metadata=md(gateway.admin_key))
    health.GetLlmHealth(sy_health_pb2.GetLlmHealthRequest(), metadata=md(created.key))
    revoked = keys.RevokeKey(auth_pb2.RevokeKeyRequest(key_id=created.api_key.id), metadata=md(gateway.admin_key))
    assert revoked.api_key.state == auth_pb2.KEY_STATE_REVOKED
    with pytest.raises(grpc.RpcError) as err:
        health.GetLlmHealth(sy_health_pb2.GetLlmHealthRequest(), metadata=md(created.key))
    assert error_info(err.value).reason == "INVALID_API_KEY"


def test_rate_limit_over_grpc(make_gateway):
    gw = make_gateway(limits={"default_rate_limit_per_minute": 2})
    with grpc.insecure_channel(gw.grpc_target) as ch:
        stub = sy_health_pb2_grpc.HealthServiceStub(ch)
        for _ in range(2):
            stub.GetLlmHealth(sy_health_pb2.GetLlmHealthRequest(), metadata=md(gw.admin_key))
        with pytest.raises(grpc.RpcError) as err:
            stub.GetLlmHealth(sy_health_pb2.GetLlmHealthRequest(), metadata=md(gw.admin_key))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(err.value)
    assert info.reason == "RATE_LIMITED" and int(info.metadata["retryAfter"]) >= 1
    trailers = dict(err.value.trailing_metadata())
    assert trailers["x-ratelimit-remaining"] == "0" and int(trailers["retry-after"]) >= 1


def test_standard_health_and_reflection(channel):
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="switchyard.auth.v1.AuthService"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "switchyard.auth.v1.AuthService", "switchyard.health.v1.HealthService",
        "switchyard.billing.v1.BillingService", "switchyard.routing.v1.RoutingService", "grpc.health.v1.Health",
    } <= names


def test_internal_error_over_grpc_hides_internals(gateway, channel, tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "switchyard.db")
    db.execute("DROP TABLE accounts")  # a real fault under the running gateway
    db.commit()
    db.close()
    with pytest.raises(grpc.RpcError) as err:
        auth_pb2_grpc.AuthServiceStub(channel).CreateKey(auth_pb2.CreateKeyRequest(name="x"), metadata=md(gateway.admin_key))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert error_info(err.value).reason == "INTERNAL_ERROR"
    assert err.value.details() == "Internal error."
