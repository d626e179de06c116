"""Method policies declared in the contract as custom method options: the scope a key needs, whether
the call is billed, who may call it (its audience) and how the account it acts on is found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from google.protobuf.descriptor import FieldDescriptor, FileDescriptor, MethodDescriptor, ServiceDescriptor

from switchyard.type.v1 import method_policy_pb2

ADMIN_SCOPE = "admin"
# Every new key gets these; "admin" must be asked for.
DEFAULT_SCOPES = ("health:read", "models:read", "inference", "billing:read")


class Audience(Enum):
    """Who may call an RPC (mirrors switchyard.type.v1.Audience); the value is how docs name it."""

    ACCOUNT = "account"              # any key of the account holding the scope
    ACCOUNT_ADMIN = "account admin"  # the account's admin keys
    OPERATOR = "operator admin"      # admin keys of the operator's own account
    PUBLIC = "no key"                # anyone: the request itself carries the proof (password, invite)

    @classmethod
    def from_proto(cls, value: int) -> "Audience | None":
        return {
            method_policy_pb2.AUDIENCE_ACCOUNT: cls.ACCOUNT,
            method_policy_pb2.AUDIENCE_ACCOUNT_ADMIN: cls.ACCOUNT_ADMIN,
            method_policy_pb2.AUDIENCE_OPERATOR: cls.OPERATOR,
            method_policy_pb2.AUDIENCE_PUBLIC: cls.PUBLIC,
        }.get(value)


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str
    billable: bool
    audience: Audience = Audience.ACCOUNT
    # Request fields naming the target: an account id, or a key id whose account is the target.
    account_field: str = ""
    key_field: str = ""

    def allows(self, scopes: frozenset[str]) -> bool:
        return not self.scope or self.scope in scopes or ADMIN_SCOPE in scopes


def service_descriptors() -> list[ServiceDescriptor]:
    """Every public Switchyard gRPC service, in a stable order."""
    from switchyard.auth.v1 import auth_pb2, users_pb2
    from switchyard.billing.v1 import billing_pb2
    from switchyard.generation.v1 import generation_pb2
    from switchyard.health.v1 import health_pb2
    from switchyard.metrics.v1 import metrics_pb2
    from switchyard.routing.v1 import routing_pb2

    files: list[FileDescriptor] = [
        auth_pb2.DESCRIPTOR, billing_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, routing_pb2.DESCRIPTOR, generation_pb2.DESCRIPTOR,
        metrics_pb2.DESCRIPTOR, users_pb2.DESCRIPTOR,
    ]
    return [service for f in files for service in f.services_by_name.values()]


def policy_of(method: MethodDescriptor) -> Policy:
    """The method's declared policy, checked: a declaration that cannot be enforced is a contract bug."""
    options = method.GetOptions()
    if not options.HasExtension(method_policy_pb2.method_policy):
        raise RuntimeError(f"{method.full_name} declares no (switchyard.type.v1.method_policy)")
    declared = options.Extensions[method_policy_pb2.method_policy]
    audience = Audience.from_proto(declared.audience)
    if audience is None:
        raise RuntimeError(f"{method.full_name}: its method_policy declares no audience")
    if audience is Audience.PUBLIC:
        # A credential-free method has no caller to hold a scope or to own a target.
        if declared.scope or declared.billable or declared.HasField("target"):
            raise RuntimeError(f"{method.full_name}: a public method declares no scope, billing or target")
    elif audience is not Audience.ACCOUNT and declared.scope != ADMIN_SCOPE:
        raise RuntimeError(f"{method.full_name}: an admin audience needs scope \"{ADMIN_SCOPE}\"")
    for field in (declared.target.account_field, declared.target.key_field):
        if not field:
            continue
        found = method.input_type.fields_by_name.get(field)
        if found is None or found.type != FieldDescriptor.TYPE_STRING or found.is_repeated:
            raise RuntimeError(f"{method.full_name}: target field {field!r} is not a string field of {method.input_type.name}")
    return Policy(
        declared.scope, declared.billable, audience, declared.target.account_field, declared.target.key_field,
    )


def method_policies() -> dict[str, Policy]:
    """'/package.Service/Method' -> Policy, for every method of ours.

    A method without a complete policy is a contract bug: it would be callable without a key, or by
    anyone, so it fails start-up (and the build, through the tests).
    """
    return {
        f"/{service.full_name}/{method.name}": policy_of(method)
        for service in service_descriptors()
        for method in service.methods
    }
