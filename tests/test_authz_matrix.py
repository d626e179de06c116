"""The authorization matrix: every RPC of the contract × every kind of caller (keys, and console
users' sessions, which must get exactly what the key of their role gets), over real gRPC.

The expected outcome of each cell is derived from the RPC's declared method policy (scope, audience,
target), never written by hand, and every refused call is checked to have changed nothing in the
database. A new RPC fails here until it has a sample request below, so none goes unchecked.
"""

from __future__ import annotations

import io
import sqlite3
import wave
from dataclasses import dataclass, field
from typing import Callable

import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2

from services.policy import DEFAULT_SCOPES, Audience, Policy, method_policies, policy_of, service_descriptors
from switchyard.auth.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from switchyard.billing.v1 import billing_pb2, billing_pb2_grpc
from switchyard.generation.v1 import generation_pb2, generation_pb2_grpc
from switchyard.health.v1 import health_pb2, health_pb2_grpc
from switchyard.metrics.v1 import metrics_pb2, metrics_pb2_grpc
from switchyard.routing.v1 import chat_pb2, routing_pb2, routing_pb2_grpc
from switchyard.type.v1 import method_policy_pb2
from tests.harness import ThreadGateway, make_settings

ACCOUNT_A, ACCOUNT_B = "acct_tenant_a", "acct_tenant_b"
CALLERS = ("no key", "revoked key", "plain key", "account admin", "other account's admin", "operator admin",
           "signed-out session", "member session", "owner session", "other account's owner session", "operator session")
# A console user's session is a credential like a key: each kind of session must get exactly what
# the kind of key its role corresponds to gets.
AS_KEY = {"signed-out session": "revoked key", "member session": "plain key", "owner session": "account admin",
          "other account's owner session": "other account's admin", "operator session": "operator admin"}
SESSION_USERS = {"member session": (ACCOUNT_A, "member@a.test", "member"), "owner session": (ACCOUNT_A, "owner@a.test", "owner"),
                 "other account's owner session": (ACCOUNT_B, "owner@b.test", "owner"),
                 "operator session": ("acct_default", "operator@example.com", "owner"),
                 "signed-out session": (ACCOUNT_A, "gone@a.test", "owner")}


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return buffer.getvalue()


_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 16


@dataclass
class World:
    gw: ThreadGateway
    channel: grpc.Channel
    keys: dict[str, str | None]   # caller -> secret
    victim_key: str               # a key of account A, the target of key RPCs
    db_path: str
    counter: int = 0
    # What a preparation made for the request that follows it (a user id, an invite token).
    prepared: dict = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def _chat() -> routing_pb2.CreateChatCompletionRequest:
    return routing_pb2.CreateChatCompletionRequest(
        chat=chat_pb2.ChatRequest(model="mock-chat", messages=[chat_pb2.ChatMessage(role="user", text="hi")], max_tokens=16)
    )


def _model(model_id: str) -> routing_pb2.Model:
    return routing_pb2.Model(
        id=model_id, mode="chat", context_window=1000, max_output_tokens=100,
        deployments=[routing_pb2.Deployment(provider="mock", upstream_model="mock-chat", weight=1)],
    )


def _put_victim_model(w: World) -> None:
    routing_pb2_grpc.RoutingServiceStub(w.channel).PutModel(
        routing_pb2.PutModelRequest(model=_model("matrix-victim")), metadata=_md(w.keys["operator admin"])
    )


_PASSWORD = "matrix-password-1"


def _signin_user(w: World) -> None:
    # A user per call: sign-in attempts are limited per address, and the matrix signs in once per caller.
    email = f"{w.fresh('signin')}@example.com"
    w.gw.call(lambda: w.gw.process.runtime.users.create_user(ACCOUNT_A, email, _PASSWORD, "member"))
    w.prepared["email"] = email


def _victim_user(w: World) -> None:
    email = f"{w.fresh('victim')}@example.com"
    user = w.gw.call(lambda: w.gw.process.runtime.users.create_user(ACCOUNT_A, email, _PASSWORD, "member"))
    w.prepared["user_id"] = user.id


def _invite(w: World) -> None:
    _, token = w.gw.call(lambda: w.gw.process.runtime.users.create_invite(ACCOUNT_A, "member", "matrix"))
    w.prepared["invite"] = token


# RPC name -> (stub class, request factory, optional preparation run by the operator first).
# Every request aims at account A's resources wherever the RPC names a target.
SAMPLES: dict[str, tuple[type, Callable[[World], object], Callable[[World], None] | None]] = {
    "CreateKey": (auth_pb2_grpc.AuthServiceStub, lambda w: auth_pb2.CreateKeyRequest(name="matrix", account_id=ACCOUNT_A), None),
    "ListKeys": (auth_pb2_grpc.AuthServiceStub, lambda w: auth_pb2.ListKeysRequest(account_id=ACCOUNT_A), None),
    "GetKey": (auth_pb2_grpc.AuthServiceStub, lambda w: auth_pb2.GetKeyRequest(key_id=w.victim_key), None),
    "RevokeKey": (auth_pb2_grpc.AuthServiceStub, lambda w: auth_pb2.RevokeKeyRequest(key_id=w.victim_key), None),
    "SignIn": (users_pb2_grpc.UserServiceStub,
               lambda w: users_pb2.SignInRequest(email=w.prepared["email"], password=_PASSWORD), _signin_user),
    "SignOut": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.SignOutRequest(), None),
    "GetCaller": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.GetCallerRequest(), None),
    "ListUsers": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.ListUsersRequest(account_id=ACCOUNT_A), None),
    "CreateUser": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.CreateUserRequest(
        email=f"{w.fresh('new')}@example.com", password=_PASSWORD, account_id=ACCOUNT_A), None),
    "DeleteUser": (users_pb2_grpc.UserServiceStub,
                   lambda w: users_pb2.DeleteUserRequest(user_id=w.prepared["user_id"], account_id=ACCOUNT_A), _victim_user),
    "CreateInvite": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.CreateInviteRequest(account_id=ACCOUNT_A), None),
    "AcceptInvite": (users_pb2_grpc.UserServiceStub, lambda w: users_pb2.AcceptInviteRequest(
        token=w.prepared["invite"], email=f"{w.fresh('invited')}@example.com", password=_PASSWORD), _invite),
    "GetUsageSummary": (billing_pb2_grpc.BillingServiceStub,
                        lambda w: billing_pb2.GetUsageSummaryRequest(account_id=ACCOUNT_A), None),
    "ListAccounts": (billing_pb2_grpc.BillingServiceStub, lambda w: billing_pb2.ListAccountsRequest(), None),
    "UpdateKey": (auth_pb2_grpc.AuthServiceStub,
                  lambda w: auth_pb2.UpdateKeyRequest(key_id=w.victim_key, rate_limit_per_minute=100_000), None),
    "SetLowBalanceThreshold": (billing_pb2_grpc.BillingServiceStub,
                               lambda w: billing_pb2.SetLowBalanceThresholdRequest(account_id=ACCOUNT_A, threshold_usd="2"), None),
    "CreateAccount": (billing_pb2_grpc.BillingServiceStub,
                      lambda w: billing_pb2.CreateAccountRequest(name="New", account_id=w.fresh("acct_matrix")), None),
    "TopUpWallet": (billing_pb2_grpc.BillingServiceStub,
                    lambda w: billing_pb2.TopUpWalletRequest(account_id=ACCOUNT_A, amount_usd="1"), None),
    "SetKeySpendCap": (billing_pb2_grpc.BillingServiceStub,
                       lambda w: billing_pb2.SetKeySpendCapRequest(key_id=w.victim_key, spend_cap_usd="5"), None),
    "GetWallet": (billing_pb2_grpc.BillingServiceStub, lambda w: billing_pb2.GetWalletRequest(), None),
    "ListLedgerEntries": (billing_pb2_grpc.BillingServiceStub,
                          lambda w: billing_pb2.ListLedgerEntriesRequest(account_id=ACCOUNT_A), None),
    "ListUsage": (billing_pb2_grpc.BillingServiceStub, lambda w: billing_pb2.ListUsageRequest(account_id=ACCOUNT_A), None),
    "GetLlmHealth": (health_pb2_grpc.HealthServiceStub, lambda w: health_pb2.GetLlmHealthRequest(), None),
    "GetMetrics": (metrics_pb2_grpc.MetricsServiceStub, lambda w: metrics_pb2.GetMetricsRequest(), None),
    "CreateChatCompletion": (routing_pb2_grpc.RoutingServiceStub, lambda w: _chat(), None),
    "CountTokens": (routing_pb2_grpc.RoutingServiceStub,
                    lambda w: routing_pb2.CountTokensRequest(chat=chat_pb2.ChatRequest(
                        model="mock-chat", messages=[chat_pb2.ChatMessage(role="user", text="hi")])), None),
    "CreateEmbeddings": (routing_pb2_grpc.RoutingServiceStub,
                         lambda w: routing_pb2.CreateEmbeddingsRequest(model="mock-embed", input=["hi"]), None),
    "Rerank": (routing_pb2_grpc.RoutingServiceStub,
               lambda w: routing_pb2.RerankRequest(model="mock-rerank", query="q", documents=["a", "b"]), None),
    "CreateImage": (routing_pb2_grpc.RoutingServiceStub,
                    lambda w: routing_pb2.CreateImageRequest(model="mock-image", prompt="a cat"), None),
    "CreateSpeech": (routing_pb2_grpc.RoutingServiceStub,
                     lambda w: routing_pb2.CreateSpeechRequest(model="mock-speech", input="hello", voice="alloy"), None),
    "CreateImageEdit": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.CreateImageEditRequest(
        model="mock-image", prompt="a hat", images=[routing_pb2.File(filename="a.png", content_type="image/png", data=_PNG)]), None),
    "CreateImageVariation": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.CreateImageVariationRequest(
        model="mock-image", image=routing_pb2.File(filename="a.png", content_type="image/png", data=_PNG)), None),
    "CreateTranscription": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.CreateTranscriptionRequest(
        model="mock-transcribe", file=routing_pb2.File(filename="a.wav", content_type="audio/wav", data=_wav())), None),
    "ListModels": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.ListModelsRequest(), None),
    "GetModel": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.GetModelRequest(model_id="mock-chat"), None),
    "ListProviders": (routing_pb2_grpc.RoutingServiceStub, lambda w: routing_pb2.ListProvidersRequest(), None),
    "PutModel": (routing_pb2_grpc.RoutingServiceStub,
                 lambda w: routing_pb2.PutModelRequest(model=_model(w.fresh("matrix-model-"))), None),
    "DeleteModel": (routing_pb2_grpc.RoutingServiceStub,
                    lambda w: routing_pb2.DeleteModelRequest(model_id="matrix-victim"), _put_victim_model),
    "Generate": (generation_pb2_grpc.GenerationServiceStub,
                 lambda w: generation_pb2.GenerateRequest(prompt="a bio", model="mock-chat", max_tokens=32), None),
    "GetBalance": (generation_pb2_grpc.GenerationServiceStub, lambda w: generation_pb2.GetBalanceRequest(), None),
    "ListTemplates": (generation_pb2_grpc.GenerationServiceStub, lambda w: generation_pb2.ListTemplatesRequest(), None),
    "ListGenerationLogs": (generation_pb2_grpc.GenerationServiceStub, lambda w: generation_pb2.ListGenerationLogsRequest(), None),
    "GetWebhookSecret": (generation_pb2_grpc.GenerationServiceStub, lambda w: generation_pb2.GetWebhookSecretRequest(), None),
    "RotateWebhookSecret": (generation_pb2_grpc.GenerationServiceStub, lambda w: generation_pb2.RotateWebhookSecretRequest(), None),
}

METHODS = [(service.full_name, method) for service in service_descriptors() for method in service.methods]
POLICIES = method_policies()


def _md(key: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")] if key else []


def expected(policy: Policy, caller: str) -> tuple[grpc.StatusCode, str] | None:
    """What the declaration says this caller gets: None for admitted, else (code, ErrorInfo reason)."""
    refused_scope = (grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE")
    caller = AS_KEY.get(caller, caller)
    if policy.audience is Audience.PUBLIC:
        return None  # no credential is read: the request's own proof (password, invite) decides
    if caller == "no key":
        return grpc.StatusCode.UNAUTHENTICATED, "MISSING_API_KEY"
    if caller == "revoked key":
        return grpc.StatusCode.UNAUTHENTICATED, "INVALID_API_KEY"
    if caller == "operator admin":
        return None
    if policy.audience is Audience.OPERATOR:
        return refused_scope
    if caller == "plain key":
        admitted = policy.audience is Audience.ACCOUNT and (not policy.scope or policy.scope in DEFAULT_SCOPES)
        return None if admitted else refused_scope
    if caller == "account admin":
        return None
    # Another account's admin, aiming at account A's resources.
    if policy.key_field:
        return grpc.StatusCode.NOT_FOUND, "NOT_FOUND"
    if policy.account_field:
        return refused_scope
    return None  # an RPC without a target acts on the caller's own account


def _snapshot(w: World) -> dict[str, list[tuple]]:
    """Every row of every table, as the database holds it (last-use times are bookkeeping, not state)."""
    w.gw.call(lambda: w.gw.process.runtime.usage_log.flush())
    conn = sqlite3.connect(w.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out = {}
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")') if r[1] != "last_used_at"]
            out[table] = sorted(conn.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "{table}"').fetchall(), key=repr)
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    gw = ThreadGateway(make_settings(tmp, limits={"default_rate_limit_per_minute": 100_000})).start()
    operator = {"Authorization": f"Bearer {gw.admin_key}"}

    def post(path: str, body: dict) -> dict:
        r = requests.post(f"{gw.url}{path}", json=body, headers=operator, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    for account in (ACCOUNT_A, ACCOUNT_B):
        post("/v1/accounts", {"name": account, "accountId": account})
    post(f"/v1/accounts/{ACCOUNT_A}/wallet:topup", {"amountUsd": "10"})

    def key(account: str, *scopes: str) -> dict:
        return post("/v1/keys", {"name": "k", "accountId": account, "scopes": list(scopes), "rateLimitPerMinute": 100_000})

    revoked = key(ACCOUNT_A, "admin")
    requests.post(f"{gw.url}/v1/keys/{revoked['apiKey']['id']}:revoke", headers=operator, timeout=10).raise_for_status()
    keys = {
        "no key": None,
        "revoked key": revoked["key"],
        "plain key": key(ACCOUNT_A)["key"],
        "account admin": key(ACCOUNT_A, "admin")["key"],
        "other account's admin": key(ACCOUNT_B, "admin")["key"],
        "operator admin": gw.admin_key,
    }
    for caller, (account, email, role) in SESSION_USERS.items():
        gw.call(lambda: gw.process.runtime.users.create_user(account, email, _PASSWORD, role))
        keys[caller] = _sign_in(gw, email)
    requests.delete(f"{gw.url}/v1/sessions/current", headers={"Authorization": f"Bearer {keys['signed-out session']}"},
                    timeout=10).raise_for_status()
    victim = key(ACCOUNT_A)["apiKey"]["id"]
    channel = grpc.insecure_channel(gw.grpc_target)
    try:
        yield World(gw, channel, keys, victim, str(tmp / "switchyard.db"))
    finally:
        channel.close()
        gw.stop()


def _sign_in(gw: ThreadGateway, email: str) -> str:
    r = requests.post(f"{gw.url}/v1/sessions", json={"email": email, "password": _PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["sessionToken"]


def _invoke(w: World, method, request, key: str | None):
    stub_class = SAMPLES[method.name][0]
    call = getattr(stub_class(w.channel), method.name)
    metadata = _md(key)
    if method.server_streaming:
        return list(call(request, metadata=metadata, timeout=30))
    return call(request, metadata=metadata, timeout=30)


def _reason(err: grpc.RpcError) -> str:
    for name, value in err.trailing_metadata() or ():
        if name == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info.reason
    return ""


def test_every_rpc_has_a_matrix_case():
    assert sorted(SAMPLES) == sorted(m.name for _, m in METHODS)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", [m for _, m in METHODS], ids=lambda m: m.name)
def test_authorization_matrix(world, method, caller):
    policy = POLICIES[f"/{method.containing_service.full_name}/{method.name}"]
    _, make_request, prepare = SAMPLES[method.name]
    if prepare is not None:
        prepare(world)
    outcome = expected(policy, caller)
    request = make_request(world)
    if outcome is None:
        _invoke(world, method, request, world.keys[caller])  # admitted: the call simply works
        if method.name == "SignOut" and caller in SESSION_USERS and caller != "signed-out session":
            world.keys[caller] = _sign_in(world.gw, SESSION_USERS[caller][1])  # it ended its own session
        return
    before = _snapshot(world)
    with pytest.raises(grpc.RpcError) as refused:
        _invoke(world, method, request, world.keys[caller])
    assert (refused.value.code(), _reason(refused.value)) == outcome, refused.value.details()
    assert _snapshot(world) == before, "a refused call changed the database"


def _file_with(policy_text: str) -> descriptor_pool.DescriptorPool:
    """A one-method service declaring `policy_text`, in a pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2.DESCRIPTOR, method_policy_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(name="probe.proto", package="probe", syntax="proto3",
                                             dependency=[method_policy_pb2.DESCRIPTOR.name])
    file.message_type.add(name="Req").field.add(name="account_id", number=1, type=9, label=1)
    file.message_type.add(name="Res")
    method = file.service.add(name="Probe").method.add(name="Call", input_type=".probe.Req", output_type=".probe.Res")
    if policy_text is not None:
        from google.protobuf import text_format

        declared = text_format.Parse(policy_text, method_policy_pb2.MethodPolicy())
        method.options.Extensions[method_policy_pb2.method_policy].CopyFrom(declared)
    pool.Add(file)
    return pool


@pytest.mark.parametrize("policy_text, complaint", [
    (None, "declares no"),
    ('scope: "inference"', "no audience"),
    ('scope: "models:read" audience: AUDIENCE_OPERATOR', "needs scope"),
    ('scope: "admin" audience: AUDIENCE_ACCOUNT_ADMIN target: {key_field: "nope"}', "not a string field"),
    ('scope: "inference" audience: AUDIENCE_PUBLIC', "public method declares no scope"),
    ('audience: AUDIENCE_PUBLIC target: {account_field: "account_id"}', "public method declares no scope"),
])
def test_an_rpc_without_a_complete_policy_cannot_be_served(policy_text, complaint):
    method = _file_with(policy_text).FindMethodByName("probe.Probe.Call")
    with pytest.raises(RuntimeError, match=complaint):
        policy_of(method)
