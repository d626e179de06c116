"""The endpoint tables of the README and docs/ say who may call what exactly as the contract declares it, for
every binding."""

from __future__ import annotations

import re
from pathlib import Path

from google.api import annotations_pb2

from services.policy import Audience, method_policies, service_descriptors

ROOT = Path(__file__).resolve().parent.parent
WHO = {Audience.ACCOUNT: "any key", Audience.ACCOUNT_ADMIN: "account admin", Audience.OPERATOR: "operator admin",
       Audience.PUBLIC: "no key"}
_VERBS = ("get", "post", "put", "delete", "patch")


def _shape(path: str) -> str:
    """A path template with its variables blanked, so `{model_id=**}` and `{id}` compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def documentation_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def declared_bindings() -> dict[tuple[str, str], tuple[str, str]]:
    """(METHOD, path shape) -> (scope, who) for every HttpRule binding of every RPC."""
    policies = method_policies()
    out = {}
    for service in service_descriptors():
        for method in service.methods:
            policy = policies[f"/{service.full_name}/{method.name}"]
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            for binding in [rule, *rule.additional_bindings]:
                verb = binding.WhichOneof("pattern")
                if verb in _VERBS:
                    out[(verb.upper(), _shape(getattr(binding, verb)))] = (policy.scope, WHO[policy.audience])
    return out


def documented_bindings() -> dict[tuple[str, str], tuple[str, str]]:
    """The same, read from every table of the README and docs/*.md that has Scope and Who columns."""
    out = {}
    columns = None
    lines = [line for page in documentation_pages() for line in [*page.read_text().splitlines(), ""]]
    for line in lines:
        if not line.startswith("|"):
            columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["Method", "Path"]:
            columns = cells if "Who" in cells else None
            continue
        if columns is None or set(cells[0]) <= set("-"):
            continue
        row = dict(zip(columns, cells))
        verb = row["Method"].strip("`")
        scope = row["Scope"].strip("`")
        previous = ""
        for match in re.finditer(r"`(?:([A-Z]+) )?([^`]+)`", row["Path"]):
            row_verb, path = match.group(1) or verb, match.group(2)
            if path.startswith(":"):  # `:streamGenerateContent` after `/v1beta/models/{model}:generateContent`
                path = previous.rsplit(":", 1)[0] + path
            previous = path
            out[(row_verb, _shape(path))] = (scope, row["Who"])
    return out


def test_every_binding_is_in_the_docs_with_its_declared_scope_and_audience():
    declared, documented = declared_bindings(), documented_bindings()
    missing = sorted(set(declared) - set(documented))
    assert not missing, f"bindings the docs' tables do not list: {missing}"
    wrong = {b: (documented[b], declared[b]) for b in declared if documented[b] != declared[b]}
    assert not wrong, f"docs (scope, who) differs from the contract's: {wrong}"
    assert not set(documented) - set(declared), "the docs list endpoints the contract does not have"
