"""EDGE_METRICS_BIND parsing and the metrics socket test (pure)."""

from __future__ import annotations

import pytest

from edge.config import Config
from edge.errors import ConfigError
from edge.runtime.scrape import metrics_binds, on_metrics_socket


def test_metrics_bind_is_host_and_port() -> None:
    config = Config.from_env({"EDGE_METRICS_BIND": "10.0.0.5:9090"})
    assert config.metrics_bind == ("10.0.0.5", 9090)
    assert metrics_binds(config) == ["10.0.0.5:9090"]
    assert Config.from_env(config.to_env()).metrics_bind == ("10.0.0.5", 9090)
    assert metrics_binds(Config.from_env({"EDGE_METRICS_BIND": "[::1]:9090"})) == ["[::1]:9090"]
    assert metrics_binds(Config.from_env({})) == []


@pytest.mark.parametrize("raw", ["9090", "host", "host:", ":9090", "h:0", "h:70000", "h:x"])
def test_a_bad_metrics_bind_names_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"EDGE_METRICS_BIND.*host:port"):
        Config.from_env({"EDGE_METRICS_BIND": raw})


def test_the_metrics_port_must_be_its_own() -> None:
    with pytest.raises(ConfigError, match="must differ from EDGE_RUNTIME_PORT"):
        Config.from_env({"EDGE_METRICS_BIND": "127.0.0.1:8080"})
    with pytest.raises(ConfigError, match="must differ"):
        Config.from_env({"EDGE_METRICS_BIND": "0.0.0.0:9000", "EDGE_PLATFORM_PORT": "9000"})


def test_the_metrics_socket_is_told_apart_by_its_port() -> None:
    config = Config.from_env({"EDGE_METRICS_BIND": "0.0.0.0:9090"})
    assert on_metrics_socket({"server": ("127.0.0.1", 9090)}, config)
    assert not on_metrics_socket({"server": ("127.0.0.1", 8080)}, config)
    assert not on_metrics_socket({}, config)
    assert not on_metrics_socket({"server": ("127.0.0.1", 9090)}, Config.from_env({}))
