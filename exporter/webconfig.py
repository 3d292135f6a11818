"""Load the web config (TLS, basic auth users, headers) in the exporter-toolkit format."""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.checks import ProblemCollector, describe
from exporter.errors import ConfigError
from exporter.tls import (
    CIPHER_SUITES,
    CLIENT_AUTH_TYPES,
    CURVES,
    TLS13_CIPHER_SUITES,
    TLS_VERSIONS,
    UNVERIFIED_CLIENT_AUTH_TYPES,
    TlsConfig,
    build_context,
)

TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}
TLS_KEYS = {
    *("cert_file", "key_file", "client_ca_file", "cert", "key", "client_ca"),
    *("client_auth_type", "client_allowed_sans", "min_version", "max_version"),
    *("cipher_suites", "prefer_server_cipher_suites", "curve_preferences"),
}
HTTP_KEYS = {"http2", "headers"}
RATE_LIMIT_KEYS = {"interval", "burst"}
HEADER_VALUES: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebConfig:
    """Hold what the web config asks of the HTTP server; the default is plain, open HTTP."""

    tls: TlsConfig | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    rate_limit: tuple[float, int] | None = None


def load_web_config(path: str | Path) -> WebConfig:
    """Read a web config file and its TLS files; raise ConfigError listing every problem."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError([f"cannot read web config file {file}: {err.strerror}"]) from err
    except yaml.YAMLError as err:
        raise ConfigError([f"{file} is not valid YAML: {err}"]) from err
    config = parse_web_config(data, base_dir=file.parent)
    if config.tls is not None:
        build_context(config.tls)
    log.info(
        "web config loaded",
        extra={"file": str(file), "tls": config.tls is not None, "users": len(config.users)},
    )
    return config


def parse_web_config(data: object, base_dir: Path = Path(".")) -> WebConfig:
    """Turn parsed YAML into a WebConfig; raise ConfigError listing every problem found."""
    reader = _WebConfigReader(base_dir)
    top = reader.mapping({} if data is None else data, "web config", TOP_KEYS)
    config = WebConfig(
        tls=reader.tls(top.get("tls_server_config") or {}),
        users=reader.users(top.get("basic_auth_users") or {}),
        headers=reader.http(top.get("http_server_config") or {}),
        rate_limit=reader.rate_limit(top.get("rate_limit") or {}),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


class _WebConfigReader(ProblemCollector):
    """Check the web config the way the exporter toolkit reads it, without `${VAR}` expansion."""

    def __init__(self, base_dir: Path) -> None:
        super().__init__({})
        self.base_dir = base_dir

    def expand(self, value: object, path: str) -> object:
        return value

    def tls(self, value: object) -> TlsConfig | None:
        path = "tls_server_config"
        raw = self.mapping(value, path, TLS_KEYS)
        raw = {k: v for k, v in raw.items() if v not in (None, "", [])}
        for key in ("cert", "key"):
            if key in raw:
                self.problem(f"{path}.{key}", f"inline PEM is not supported; use {key}_file")
        if not raw:
            return None
        auth = self._client_auth(raw, path)
        if "cert_file" not in raw or "key_file" not in raw:
            self.problem(path, "needs both cert_file and key_file to serve TLS")
            return None
        versions = self._versions(raw, path)
        ca_file = raw.get("client_ca_file")
        return TlsConfig(
            cert_file=self._file(raw["cert_file"], f"{path}.cert_file"),
            key_file=self._file(raw["key_file"], f"{path}.key_file"),
            client_ca_file=None
            if ca_file is None
            else self._file(ca_file, f"{path}.client_ca_file"),
            client_ca=self.text(raw["client_ca"], f"{path}.client_ca")
            if "client_ca" in raw
            else None,
            verify_mode=auth,
            client_allowed_sans=tuple(
                self.items(raw.get("client_allowed_sans", []), f"{path}.client_allowed_sans", str)
            ),
            min_version=versions[0],
            max_version=versions[1],
            ciphers=self._ciphers(raw.get("cipher_suites", []), f"{path}.cipher_suites"),
            prefer_server_ciphers=self._flag(raw, "prefer_server_cipher_suites", path),
            curve=self._curve(raw.get("curve_preferences", []), f"{path}.curve_preferences"),
        )

    def users(self, value: object) -> dict[str, bytes]:
        if not isinstance(value, dict):
            self.problem(
                "basic_auth_users",
                f"must be a mapping of user to bcrypt hash, got a {type(value).__name__}",
            )
            return {}
        users = {}
        for name, hashed in value.items():
            path = f"basic_auth_users.{name}"
            if not isinstance(name, str | int) or isinstance(name, bool) or ":" in str(name):
                self.problem(path, "a user name must be text without ':'")
            elif not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
                # The value is never echoed: it may be a password typed where a hash belongs.
                self.problem(
                    path,
                    "is not a bcrypt hash such as $2b$12$ followed by 53 characters",
                )
            else:
                users[str(name)] = hashed.encode()
        return users

    def http(self, value: object) -> tuple[tuple[str, str], ...]:
        raw = self.mapping(value, "http_server_config", HTTP_KEYS)
        self._flag(raw, "http2", "http_server_config")
        headers = self.mapping(
            raw.get("headers") or {}, "http_server_config.headers", set(HEADER_VALUES)
        )
        chosen = []
        for name, text in headers.items():
            path = f"http_server_config.headers.{name}"
            if text in (None, ""):
                continue
            allowed = HEADER_VALUES[name]
            if not isinstance(text, str) or (allowed and text.lower() not in allowed):
                expected = " or ".join(allowed) if allowed else "text"
                self.problem(path, f"must be {expected}, got {describe(text)}")
            else:
                chosen.append((name, text))
        return tuple(chosen)

    def rate_limit(self, value: object) -> tuple[float, int] | None:
        raw = self.mapping(value, "rate_limit", RATE_LIMIT_KEYS)
        interval = self.duration(raw.get("interval", 0), "rate_limit.interval")
        if interval == 0:
            return None
        burst = self.whole(raw.get("burst", 0), "rate_limit.burst", 1, 1_000_000)
        return interval, burst

    def _client_auth(self, raw: dict[str, Any], path: str) -> ssl.VerifyMode:
        name = str(raw.get("client_auth_type", "NoClientCert"))
        has_ca = "client_ca_file" in raw or "client_ca" in raw
        if name in UNVERIFIED_CLIENT_AUTH_TYPES:
            self.problem(
                f"{path}.client_auth_type",
                f"{name} is not supported: Python's ssl module verifies every client certificate "
                "it asks for; use RequireAndVerifyClientCert or VerifyClientCertIfGiven",
            )
            return ssl.CERT_NONE
        if name not in CLIENT_AUTH_TYPES:
            self.problem(
                f"{path}.client_auth_type",
                f"must be one of {', '.join(CLIENT_AUTH_TYPES)}, got {describe(name)}",
            )
            return ssl.CERT_NONE
        mode = CLIENT_AUTH_TYPES[name]
        if mode == ssl.CERT_NONE and has_ca:
            self.problem(
                f"{path}.client_auth_type",
                "a client CA is set but client certificates are not asked for",
            )
        if mode != ssl.CERT_NONE and not has_ca:
            self.problem(f"{path}.client_ca_file", f"is required with {name}")
        if raw.get("client_allowed_sans") and mode != ssl.CERT_REQUIRED:
            self.problem(
                f"{path}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert"
            )
        return mode

    def _versions(self, raw: dict[str, Any], path: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
        low = self._version(raw.get("min_version", "TLS12"), f"{path}.min_version")
        high = self._version(raw.get("max_version", "TLS13"), f"{path}.max_version")
        if low > high:
            self.problem(f"{path}.min_version", "is higher than max_version")
        return low, high

    def _version(self, value: object, path: str) -> ssl.TLSVersion:
        if isinstance(value, str) and value in TLS_VERSIONS:
            return TLS_VERSIONS[value]
        self.problem(path, f"must be one of {', '.join(TLS_VERSIONS)}, got {describe(value)}")
        return ssl.TLSVersion.TLSv1_2

    def _ciphers(self, value: object, path: str) -> tuple[str, ...]:
        names = []
        for i, name in enumerate(self.items(value, path, str)):
            if name in CIPHER_SUITES:
                names.append(CIPHER_SUITES[name])
            elif name not in TLS13_CIPHER_SUITES:
                self.problem(
                    f"{path}[{i}]",
                    f"unknown cipher suite {name!r}; expected one of {', '.join(CIPHER_SUITES)}",
                )
        return tuple(names)

    def _curve(self, value: object, path: str) -> str | None:
        names = self.items(value, path, str)
        for i, name in enumerate(names):
            if name not in CURVES:
                self.problem(f"{path}[{i}]", f"must be one of {', '.join(CURVES)}, got {name!r}")
        if len(names) > 1:
            self.problem(path, "Python's ssl module can restrict the handshake to one curve only")
        return CURVES.get(names[0]) if names else None

    def _flag(self, raw: dict[str, Any], key: str, path: str) -> bool:
        value = raw.get(key, True)
        if not isinstance(value, bool):
            self.problem(f"{path}.{key}", f"must be true or false, got {describe(value)}")
            return True
        return value

    def _file(self, value: object, path: str) -> Path:
        name = self.text(value, path)
        file = self.base_dir / name
        if not name:
            return file
        try:
            with file.open("rb"):
                pass
        except OSError as err:
            self.problem(path, f"cannot read {file}: {err.strerror}")
        return file
