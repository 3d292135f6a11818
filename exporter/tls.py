"""Build the server's SSL context from the web config and rebuild it when its files change."""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import ConfigError

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Python's ssl module verifies every certificate it asks for; it cannot take one unverified.
UNVERIFIED_CLIENT_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# Go's names of the TLS 1.2 suites it offers, and OpenSSL's names of the same suites.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# Accepted as Go accepts them, with no effect: Python's ssl module cannot choose TLS 1.3 suites.
TLS13_CIPHER_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)
CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsConfig:
    """Hold the server certificate and the client-certificate policy, paths resolved."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_ca: str | None = None
    verify_mode: ssl.VerifyMode = ssl.CERT_NONE
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: tuple[str, ...] = ()
    prefer_server_ciphers: bool = True
    curve: str | None = None


def build_context(config: TlsConfig) -> ssl.SSLContext:
    """Return a server SSL context; raise ConfigError naming each file or setting refused."""
    path = "tls_server_config"
    problems = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = config.min_version
    context.maximum_version = config.max_version
    if config.prefer_server_ciphers:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        # An empty password makes an encrypted key fail here instead of prompting on a terminal.
        context.load_cert_chain(config.cert_file, config.key_file, password=b"")
    except (ssl.SSLError, OSError) as err:
        problems.append(
            f"{path}.key_file: cannot use {config.key_file} with {config.cert_file}: "
            f"{_reason(err)} (the key must be unencrypted PEM and match the certificate)"
        )
    for where, file, text in (
        ("client_ca_file", config.client_ca_file, None),
        ("client_ca", None, config.client_ca),
    ):
        if file is None and text is None:
            continue
        try:
            context.load_verify_locations(cafile=file, cadata=text)
        except (ssl.SSLError, OSError, ValueError) as err:
            problems.append(f"{path}.{where}: holds no usable PEM certificate: {_reason(err)}")
    if config.ciphers:
        try:
            context.set_ciphers(":".join(config.ciphers))
        except ssl.SSLError as err:
            problems.append(f"{path}.cipher_suites: OpenSSL refuses them: {_reason(err)}")
    if config.curve:
        try:
            context.set_ecdh_curve(config.curve)
        except (ssl.SSLError, ValueError) as err:
            problems.append(f"{path}.curve_preferences: OpenSSL refuses it: {_reason(err)}")
    context.verify_mode = config.verify_mode
    if problems:
        raise ConfigError(problems)
    return context


class ServerTls:
    """Hand out the SSL context, rebuilt when the certificate, key or CA file changes."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()
        self._context = build_context(config)

    def context(self) -> ssl.SSLContext:
        """Return the current context; costs a stat of each file, a rebuild when one changed."""
        stamp = self._files_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._context = build_context(self.config)
                    log.info("TLS files changed; new connections use them")
                except ConfigError as err:
                    log.warning(
                        "TLS files changed but cannot be used; keeping the previous ones",
                        extra={"problems": err.problems},
                    )
            return self._context

    def peer_allowed(self, conn: ssl.SSLSocket) -> bool:
        """Tell whether the client certificate names one of `client_allowed_sans`, if set."""
        if not self.config.client_allowed_sans:
            return True
        entries = (conn.getpeercert() or {}).get("subjectAltName", ())
        names = {_normal(str(entry[1])) for entry in entries if isinstance(entry, tuple)}
        return any(_normal(name) in names for name in self.config.client_allowed_sans)

    def _files_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        files = (self.config.cert_file, self.config.key_file, self.config.client_ca_file)
        return tuple(_stamp(file) for file in files)


def _stamp(file: Path | None) -> tuple[int, int, int] | None:
    if file is None:
        return None
    try:
        info = os.stat(file)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _normal(name: str) -> str:
    # OpenSSL spells IPv6 addresses in full; compare addresses, not their spellings.
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _reason(err: Exception) -> str:
    if isinstance(err, ssl.SSLError):
        return str(err.reason or err.strerror or err)
    if isinstance(err, OSError):
        return str(err.strerror or err)
    return str(err)
