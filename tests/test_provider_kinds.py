"""The provider-kind registry (services/routing/adapters/kinds.py): what config accepts, the endpoint
it fills in, and the adapter the router calls, all from one line per kind."""

from __future__ import annotations

import pytest

from services.config import ConfigError, ProviderConfig, load_settings
from services.routing.adapters.kinds import PROVIDER_KINDS, adapter_class, default_adapters


@pytest.mark.parametrize("kind", sorted(PROVIDER_KINDS))
def test_every_registered_kind_is_a_valid_config_kind_with_an_adapter(kind):
    spec = PROVIDER_KINDS[kind]
    base_url = None if spec.default_base_url or not spec.upstream else "https://example.invalid/"
    provider = ProviderConfig(name=kind, kind=kind, base_url=base_url)
    assert provider.base_url == (spec.default_base_url if base_url is None else "https://example.invalid")
    adapter = default_adapters()[kind]
    assert isinstance(adapter, adapter_class(kind))
    for method in ("chat", "stream_chat", "embed", "rerank"):
        assert callable(getattr(adapter, method))
    if spec.upstream:
        probe = adapter.probe_request(provider, "sk-probe")
        assert probe.url.startswith(provider.base_url) and "sk-probe" in "".join(probe.headers.values())


def test_one_adapter_instance_serves_every_kind_of_its_class():
    adapters = default_adapters()
    assert adapters["openai"] is adapters["deepseek"] is adapters["azure"]


def test_unknown_kind_names_the_known_ones(tmp_path):
    path = tmp_path / "switchyard.yaml"
    path.write_text("providers:\n  p: {kind: openia}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    message = str(caught.value)
    assert "providers.p.kind" in message
    assert all(f"'{kind}'" in message for kind in PROVIDER_KINDS)


def test_a_kind_without_a_default_endpoint_needs_base_url():
    with pytest.raises(ValueError, match=r"kind 'azure' needs base_url \(https://<resource>.openai.azure.com\)"):
        ProviderConfig(name="az", kind="azure")
