"""The store's and the influx sink's config sections: defaults, errors, token sources."""

from __future__ import annotations

import pytest

from gateway.config import InfluxConfig, load_config
from gateway.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_influx_section_is_optional(tmp_path):
    cfg = load_config(write(tmp_path, "site: {id: estate-1}\n"))
    assert cfg.influx is None
    assert (cfg.store.max_bytes, cfg.store.on_full) == (None, "prune_oldest")
    assert cfg.store.retention.rollup_1m_days == 90


def test_config_influx_refuses_two_token_sources(tmp_path):
    path = write(tmp_path, "site: {id: estate-1}\ninflux:\n  url: http://i:8086\n"
                           "  bucket: b\n  token_env: T\n  token_file: /t\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "give token_env or token_file, not both" in str(err.value)


def test_config_influx_refuses_inline_token(tmp_path):
    path = write(tmp_path, "site: {id: estate-1}\ninflux:\n  url: http://i:8086\n"
                           "  bucket: b\n  token: secret\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "influx.token: unknown field" in str(err.value)


def test_config_store_on_full_must_be_known(tmp_path):
    path = write(tmp_path, "site: {id: estate-1}\nstore:\n  on_full: prune_newest\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "store.on_full: 'prune_newest' is not allowed (did you mean 'prune_oldest'?)" \
        in str(err.value)


def test_config_influx_token_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUX_TOKEN_T", "abc\n")
    assert InfluxConfig(url="http://i", bucket="b", token_env="INFLUX_TOKEN_T").token() == "abc"
    f = tmp_path / "tok"
    f.write_text("xyz\n")
    assert InfluxConfig(url="http://i", bucket="b", token_file=str(f)).token() == "xyz"
    assert InfluxConfig(url="http://i", bucket="b").token() == ""
    monkeypatch.delenv("INFLUX_TOKEN_T")
    with pytest.raises(ConfigError, match="'INFLUX_TOKEN_T' is not set"):
        InfluxConfig(url="http://i", bucket="b", token_env="INFLUX_TOKEN_T").token()
