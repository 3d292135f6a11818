"""Read web config files in the exporter-toolkit format, and refuse bad ones with every problem."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trustme
import yaml
from cryptography.hazmat.primitives import serialization

from exporter.errors import ConfigError
from exporter.tls import build_context
from exporter.webconfig import WebConfig, load_web_config, parse_web_config

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """Write ca.crt, server.crt and server.key under tmp_path/certs."""
    directory = tmp_path / "certs"
    directory.mkdir()
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    leaf.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    leaf.private_key_pem.write_to_path(str(directory / "server.key"))
    return directory


def _load(directory: Path, data: Any) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(data))
    return load_web_config(path)


def _problems(directory: Path, data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(directory, data)
    return caught.value.problems


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("")
    assert load_web_config(tmp_path / "web.yml") == WebConfig()
    assert parse_web_config({"tls_server_config": {}, "basic_auth_users": {}}) == WebConfig()


def test_paths_are_relative_to_the_web_config_file(certs: Path, tmp_path: Path) -> None:
    data = {
        "tls_server_config": {
            "cert_file": "certs/server.crt",
            "key_file": "certs/server.key",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": "certs/ca.crt",
            "min_version": "TLS13",
        },
        "basic_auth_users": {"alice": HASH},
    }

    config = _load(tmp_path, data)

    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "certs" / "server.crt"
    assert config.tls.client_ca_file == tmp_path / "certs" / "ca.crt"
    assert config.tls.verify_mode == ssl.CERT_REQUIRED
    assert config.tls.min_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {"alice": HASH.encode()}


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    data = {
        "tls_config": {},
        "tls_server_config": {
            "cert_file": "missing.crt",
            "key_file": "missing.key",
            "min_version": "TLS14",
            "max_version": "TLS12",
            "client_auth_type": "RequireAnyClientCert",
            "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"],
            "curve_preferences": ["CurveP256", "X25519"],
            "prefer_server_cipher_suites": "yes",
            "extra": 1,
        },
        "basic_auth_users": {"alice": "plain-password", "bob:ops": HASH},
        "http_server_config": {"headers": {"X-Frame-Options": "always", "Server": "x"}},
        "rate_limit": {"interval": "1s", "burst": 0},
    }

    problems = _problems(tmp_path, data)

    paths = {problem.split(": ", 1)[0] for problem in problems}
    assert paths == {
        "web config.tls_config",
        "tls_server_config.extra",
        "tls_server_config.cert_file",
        "tls_server_config.key_file",
        "tls_server_config.min_version",
        "tls_server_config.client_auth_type",
        "tls_server_config.cipher_suites[0]",
        "tls_server_config.curve_preferences",
        "tls_server_config.prefer_server_cipher_suites",
        "basic_auth_users.alice",
        "basic_auth_users.bob:ops",
        "http_server_config.headers.Server",
        "http_server_config.headers.X-Frame-Options",
        "rate_limit.burst",
    }, problems
    assert not any("plain-password" in problem for problem in problems)


def test_a_version_range_that_admits_nothing_is_refused(certs: Path) -> None:
    tls = {"cert_file": "server.crt", "key_file": "server.key"}
    problems = _problems(
        certs, {"tls_server_config": {**tls, "min_version": "TLS13", "max_version": "TLS12"}}
    )
    assert problems == ["tls_server_config.min_version: is higher than max_version"]


@pytest.mark.parametrize(
    ("tls", "path"),
    [
        ({"client_ca_file": "ca.crt"}, "tls_server_config.client_auth_type"),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "tls_server_config.client_ca_file"),
        (
            {
                "client_auth_type": "VerifyClientCertIfGiven",
                "client_ca_file": "ca.crt",
                "client_allowed_sans": ["a.example"],
            },
            "tls_server_config.client_allowed_sans",
        ),
        ({"client_auth_type": "RequestClientCert"}, "tls_server_config.client_auth_type"),
        ({"cert": "-----BEGIN CERTIFICATE-----"}, "tls_server_config.cert"),
    ],
    ids=["ca-without-auth", "auth-without-ca", "sans-optional", "unverified", "inline-cert"],
)
def test_client_certificate_settings_python_cannot_honour_are_refused(
    certs: Path, tls: dict[str, Any], path: str
) -> None:
    base = {"cert_file": "server.crt", "key_file": "server.key"}
    problems = _problems(certs, {"tls_server_config": {**base, **tls}})
    assert [problem.split(": ", 1)[0] for problem in problems] == [path]


def test_a_key_that_does_not_match_the_certificate_is_refused(certs: Path) -> None:
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(certs / "other.key"))
    tls = {"cert_file": "server.crt", "key_file": "other.key"}

    problems = _problems(certs, {"tls_server_config": tls})

    assert len(problems) == 1 and problems[0].startswith("tls_server_config.key_file: ")


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(certs: Path) -> None:
    key = serialization.load_pem_private_key((certs / "server.key").read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (certs / "locked.key").write_bytes(encrypted)

    problems = _problems(
        certs, {"tls_server_config": {"cert_file": "server.crt", "key_file": "locked.key"}}
    )

    assert "unencrypted" in problems[0]


def test_a_missing_or_broken_web_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read web config file"):
        load_web_config(tmp_path / "absent.yml")
    (tmp_path / "broken.yml").write_text("tls_server_config: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_web_config(tmp_path / "broken.yml")


def test_cipher_suites_use_go_names_and_restrict_tls12(certs: Path) -> None:
    tls = {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"],
        "curve_preferences": ["CurveP384"],
    }

    config = _load(certs, {"tls_server_config": tls})
    assert config.tls is not None
    context = build_context(config.tls)

    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384"}


def test_response_headers_and_rate_limit_are_read(tmp_path: Path) -> None:
    config = parse_web_config(
        {
            "http_server_config": {
                "http2": False,
                "headers": {"X-Content-Type-Options": "nosniff", "X-XSS-Protection": ""},
            },
            "rate_limit": {"interval": "500ms", "burst": 5},
        }
    )
    assert config.headers == (("X-Content-Type-Options", "nosniff"),)
    assert config.rate_limit == (0.5, 5)
