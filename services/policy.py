"""Method policies (required scope, billable) declared in the contract as custom method options."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from switchyard.type.v1 import method_policy_pb2

ADMIN_SCOPE = "admin"
# Every new key gets these; "admin" must be asked for.
DEFAULT_SCOPES = ("health:read", "models:read", "inference", "billing:read")


@dataclass(frozen=True, slots=True)
class Policy:
    scope: str
    billable: bool

    def allows(self, scopes: frozenset[str]) -> bool:
        return not self.scope or self.scope in scopes or ADMIN_SCOPE in scopes


def service_descriptors() -> list[ServiceDescriptor]:
    """Every public Switchyard gRPC service, in a stable order."""
    from switchyard.auth.v1 import auth_pb2
    from switchyard.billing.v1 import billing_pb2
    from switchyard.generation.v1 import generation_pb2
    from switchyard.health.v1 import health_pb2
    from switchyard.routing.v1 import routing_pb2

    files: list[FileDescriptor] = [
        auth_pb2.DESCRIPTOR, billing_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, routing_pb2.DESCRIPTOR, generation_pb2.DESCRIPTOR,
    ]
    return [service for f in files for service in f.services_by_name.values()]


def method_policies() -> dict[str, Policy]:
    """'/package.Service/Method' -> Policy, for every method that declares one.

    A method of ours without a policy is a contract bug: it would be callable without a key.
    """
    policies: dict[str, Policy] = {}
    for service in service_descriptors():
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(method_policy_pb2.method_policy):
                raise RuntimeError(f"{method.full_name} declares no (switchyard.type.v1.method_policy)")
            declared = options.Extensions[method_policy_pb2.method_policy]
            policies[f"/{service.full_name}/{method.name}"] = Policy(declared.scope, declared.billable)
    return policies
