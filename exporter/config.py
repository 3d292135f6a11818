"""Load and validate the YAML configuration, reporting every problem at once with its path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter.checks import ProblemCollector
from exporter.credentials import SecretSource, read_regular_file
from exporter.errors import ConfigError, shown
from exporter.settings import (
    DEFAULT_ENDPOINT,
    DEFAULT_IMAGE_INFO_TYPES,
    DEFAULT_QUOTAS,
    IMAGE_LABELS,
    IMAGE_TYPE_FILTERS,
    KNOWN_REGIONS,
    MAX_PAGE_SIZE,
    AccountConfig,
    Config,
    HttpConfig,
    ImageInfoConfig,
    RefreshConfig,
)

TOP_KEYS = {
    "accounts",
    "refresh",
    "http",
    "image_types",
    "page_size",
    "quotas",
    "labels",
    "image_info",
}
IMAGE_INFO_KEYS = {"enabled", "image_types", "max_series"}
ACCOUNT_KEYS = {
    "name",
    "access_key_id",
    "access_key_id_file",
    "secret_access_key",
    "secret_access_key_file",
    "security_token",
    "security_token_file",
    "regions",
    "endpoint",
    "quotas",
}
REFRESH_MODES = ("interval", "scrape")
_REGION_ID = re.compile(r"^[a-z][a-z0-9-]*$")
_ENDPOINT = re.compile(r"^https?://[^/\s]+")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read a configuration file; raise ConfigError listing every problem found."""
    file = Path(path)
    try:
        text = read_regular_file(file)
    except UnicodeDecodeError as err:
        raise ConfigError([f"{file} is not UTF-8 text: {err.reason} at byte {err.start}"]) from err
    except OSError as err:
        raise ConfigError(
            [f"cannot read config file {file}: {err.strerror}; pass --config.file PATH"]
        ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError([f"{file} is not valid YAML: {err}"]) from err
    except (ValueError, RecursionError) as err:
        # PyYAML lets these through for impossible dates and very deep nesting.
        raise ConfigError([f"{file} is not valid YAML: {type(err).__name__}: {err}"]) from err
    return parse_config(data, base_dir=file.parent, environ=environ)


def parse_config(
    data: object, base_dir: Path = Path("."), environ: Mapping[str, str] | None = None
) -> Config:
    """Turn parsed YAML into a Config; raise ConfigError listing every problem found."""
    reader = _ConfigReader(base_dir, os.environ if environ is None else environ)
    config = reader.config(data)
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


class _ConfigReader(ProblemCollector):
    """Apply the exporter's rules on top of the generic type checks."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        self.base_dir = base_dir

    def config(self, data: object) -> Config:
        if data is None:
            data = {}
        top = self.mapping(data, "config", TOP_KEYS, required=frozenset({"accounts"}))
        return Config(
            accounts=self._accounts(top.get("accounts")) if "accounts" in top else (),
            refresh=self._refresh(top.get("refresh", {})),
            http=self._http(top.get("http", {})),
            image_types=self._image_types(top.get("image_types")),
            page_size=self.whole(
                top.get("page_size", MAX_PAGE_SIZE), "page_size", 1, MAX_PAGE_SIZE
            ),
            quotas=self._quotas(top.get("quotas", DEFAULT_QUOTAS), "quotas"),
            labels=self._labels(top.get("labels")),
            image_info=self._image_info(top.get("image_info", {})),
        )

    def _accounts(self, value: object) -> tuple[AccountConfig, ...]:
        if not isinstance(value, list) or not value:
            self.problem("accounts", "must be a non-empty list of accounts")
            return ()
        accounts = [self._account(item, f"accounts[{i}]") for i, item in enumerate(value)]
        names = [account.name for account in accounts if account is not None]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.problem("accounts", f"account name {shown(name)} is used more than once")
        return tuple(account for account in accounts if account is not None)

    def _account(self, value: object, path: str) -> AccountConfig | None:
        raw = self.mapping(value, path, ACCOUNT_KEYS, frozenset({"name"}))
        if not raw:
            return None
        endpoint = self.text(raw.get("endpoint", DEFAULT_ENDPOINT), f"{path}.endpoint")
        regions = self._regions(raw.get("regions"), f"{path}.regions", "endpoint" in raw)
        if endpoint and not _ENDPOINT.match(endpoint):
            self.problem(
                f"{path}.endpoint", f"must start with http:// or https://, got {shown(endpoint)}"
            )
        elif endpoint:
            self._check_url(endpoint, f"{path}.endpoint")
        if len(regions) > 1 and "{region}" not in endpoint:
            self.problem(
                f"{path}.endpoint",
                "must contain {region} when the account lists several regions, "
                "or every region would query the same endpoint",
            )
        secret = self._secret(raw, "secret_access_key", path, required=True)
        return AccountConfig(
            name=self.text(raw.get("name"), f"{path}.name"),
            access_key_id=self._secret(raw, "access_key_id", path, required=True)
            or SecretSource(""),
            secret_access_key=secret or SecretSource(""),
            security_token=self._secret(raw, "security_token", path, required=False),
            regions=regions,
            endpoint=endpoint,
            quotas=self._quotas(raw.get("quotas", {}), f"{path}.quotas"),
        )

    def _check_url(self, endpoint: str, path: str) -> None:
        try:
            urlsplit(endpoint.replace("{region}", "region")).port  # noqa: B018 - it validates
        except ValueError as err:
            self.problem(path, f"is not a usable URL: {err}")

    def _regions(self, value: object, path: str, has_endpoint: bool) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.problem(path, "must be a non-empty list of region ids such as [bj, gz]")
            return ()
        regions: list[str] = []
        for i, item in enumerate(value):
            region = self.text(item, f"{path}[{i}]")
            if region and not _REGION_ID.match(region):
                self.problem(
                    f"{path}[{i}]", f"{shown(region)} is not a region id such as bj or gz"
                )
            elif region and region not in KNOWN_REGIONS and not has_endpoint:
                self.problem(
                    f"{path}[{i}]",
                    f"unknown region {shown(region)}; use one of {', '.join(KNOWN_REGIONS)}, "
                    "or set the account's endpoint for a region not listed",
                )
            elif region in regions:
                self.problem(f"{path}[{i}]", f"region {shown(region)} is listed twice")
            regions.append(region)
        return tuple(regions)

    def _secret(
        self, raw: dict[str, Any], key: str, path: str, *, required: bool
    ) -> SecretSource | None:
        file_key = f"{key}_file"
        if key in raw and file_key in raw:
            self.problem(f"{path}.{key}", f"set either {key} or {file_key}, not both")
            return None
        if file_key in raw:
            name = self.text(raw[file_key], f"{path}.{file_key}")
            file = self.base_dir / name
            try:
                source = SecretSource.from_file(file)
            except UnicodeDecodeError:
                self.problem(f"{path}.{file_key}", f"{file} is not UTF-8 text")
                return None
            except OSError as err:
                self.problem(f"{path}.{file_key}", f"cannot read {file}: {err.strerror}")
                return None
            if not source.value:
                self.problem(f"{path}.{file_key}", f"{file} is empty")
            return source
        if key in raw:
            value = self.text(raw[key], f"{path}.{key}")
            return SecretSource(value) if value else None
        if required:
            self.problem(path, f"missing {key} (or {file_key}): the account has no credentials")
        return None

    def _refresh(self, value: object) -> RefreshConfig:
        default = RefreshConfig()
        raw = self.mapping(value, "refresh", set(default.__dataclass_fields__))
        mode = self.text(raw.get("mode", default.mode), "refresh.mode")
        if mode and mode not in REFRESH_MODES:
            self.problem(
                "refresh.mode", f"must be one of {', '.join(REFRESH_MODES)}, got {shown(mode)}"
            )
        refresh = RefreshConfig(
            mode=mode,
            interval=self.duration(raw.get("interval", default.interval), "refresh.interval", 1.0),
            min_interval=self.duration(
                raw.get("min_interval", default.min_interval), "refresh.min_interval"
            ),
            timeout=self.duration(raw.get("timeout", default.timeout), "refresh.timeout", 1.0),
            max_staleness=self.duration(
                raw.get("max_staleness", default.max_staleness), "refresh.max_staleness"
            ),
            jitter=self.fraction(raw.get("jitter", default.jitter), "refresh.jitter"),
            concurrency=self.whole(
                raw.get("concurrency", default.concurrency), "refresh.concurrency", 1, 256
            ),
        )
        if mode == "interval" and refresh.max_staleness < refresh.interval:
            self.problem(
                "refresh.max_staleness",
                "must be at least refresh.interval, or data would be dropped between refreshes",
            )
        return refresh

    def _http(self, value: object) -> HttpConfig:
        default = HttpConfig()
        raw = self.mapping(value, "http", set(default.__dataclass_fields__))
        return HttpConfig(
            connect_timeout=self.duration(
                raw.get("connect_timeout", default.connect_timeout), "http.connect_timeout", 0.001
            ),
            read_timeout=self.duration(
                raw.get("read_timeout", default.read_timeout), "http.read_timeout", 0.001
            ),
            max_attempts=self.whole(
                raw.get("max_attempts", default.max_attempts), "http.max_attempts", 1, 10
            ),
            initial_backoff=self.duration(
                raw.get("initial_backoff", default.initial_backoff), "http.initial_backoff"
            ),
            max_backoff=self.duration(
                raw.get("max_backoff", default.max_backoff), "http.max_backoff"
            ),
            ca_file=self._ca_file(raw.get("ca_file")),
        )

    def _ca_file(self, value: object) -> str | None:
        if value is None:
            return None
        file = self.base_dir / self.text(value, "http.ca_file")
        if not file.is_file():
            self.problem("http.ca_file", f"{file} is not a readable file of PEM certificates")
        return str(file)

    def _image_types(self, value: object) -> tuple[str, ...]:
        if value is None:
            return Config(accounts=()).image_types
        items = self.items(value, "image_types", str)
        for i, item in enumerate(items):
            if item not in IMAGE_TYPE_FILTERS:
                known = ", ".join(sorted(IMAGE_TYPE_FILTERS))
                self.problem(
                    f"image_types[{i}]", f"unknown imageType {shown(item)}; use one of {known}"
                )
        if isinstance(value, list) and not value:
            self.problem("image_types", "must list at least one imageType filter")
        return tuple(dict.fromkeys(items))

    def _labels(self, value: object) -> tuple[str, ...]:
        if value is None:
            return IMAGE_LABELS
        items = self.items(value, "labels", str)
        for i, item in enumerate(items):
            if item not in IMAGE_LABELS:
                self.problem(
                    f"labels[{i}]",
                    f"unknown label {shown(item)}; use any of {', '.join(IMAGE_LABELS)} "
                    "(account and region are always present)",
                )
        return tuple(label for label in IMAGE_LABELS if label in items)

    def _image_info(self, value: object) -> ImageInfoConfig:
        raw = self.mapping(value, "image_info", IMAGE_INFO_KEYS)
        enabled = raw.get("enabled", False)
        if not isinstance(enabled, bool):
            self.problem("image_info.enabled", "must be true or false")
        kinds = tuple(
            self.items(
                raw.get("image_types", list(DEFAULT_IMAGE_INFO_TYPES)),
                "image_info.image_types",
                str,
            )
        )
        max_series = self.whole(raw.get("max_series", 500), "image_info.max_series", 1, 100_000)
        return ImageInfoConfig(kinds if enabled is True else (), max_series)

    def _quotas(self, value: object, path: str) -> dict[str, int]:
        if not isinstance(value, dict):
            self.problem(path, "must be a mapping of image type to limit, such as {Custom: 20}")
            return {}
        return {str(k): self.whole(v, f"{path}.{k}", 0, 1_000_000) for k, v in value.items()}
