"""Check configuration loading: defaults, expansion, secrets from files and error reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from exporter.config import load_config, parse_config
from exporter.credentials import SecretSource
from exporter.errors import ConfigError
from exporter.settings import DEFAULT_IMAGE_TYPES, IMAGE_LABELS

MINIMAL = {
    "accounts": [
        {"name": "prod", "access_key_id": "ak", "secret_access_key": "sk", "regions": ["bj"]}
    ]
}


def _problems(
    data: object, environ: dict[str, str] | None = None, base_dir: Path = Path(".")
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir, environ=environ or {})
    return info.value.problems


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(MINIMAL, environ={})
    assert config.refresh.mode == "interval"
    assert config.refresh.interval == 300
    assert config.image_types == DEFAULT_IMAGE_TYPES
    assert config.page_size == 1000
    assert config.quotas == {"Custom": 20}
    assert config.labels == IMAGE_LABELS
    assert config.accounts[0].endpoint_for("bj") == "https://bcc.bj.baidubce.com"


def test_every_key_of_the_example_config_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCE_ACCESS_KEY_ID", "example-ak")
    monkeypatch.setenv("BCE_SECRET_ACCESS_KEY", "example-sk")
    example = Path(__file__).parent.parent / "config.example.yml"
    config = load_config(example)
    assert config.accounts[0].access_key_id.value == "example-ak"
    assert config.accounts[0].secret_access_key.value == "example-sk"


def test_environment_references_are_expanded_with_defaults() -> None:
    data = {
        "accounts": [
            {
                "name": "${ACCOUNT:-staging}",
                "access_key_id": "${AK}",
                "secret_access_key": "pre$${AK}",
                "regions": ["bj"],
            }
        ]
    }
    account = parse_config(data, environ={"AK": "key-1"}).accounts[0]
    assert account.name == "staging"
    assert account.access_key_id.value == "key-1"
    assert account.secret_access_key.value == "pre${AK}"


def test_unset_environment_variable_is_reported_with_its_path() -> None:
    data = {"accounts": [{**MINIMAL["accounts"][0], "secret_access_key": "${NOPE}"}]}
    problems = _problems(data)
    assert any(p.startswith("accounts[0].secret_access_key:") and "NOPE" in p for p in problems)


def test_secret_is_read_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "sk.txt").write_text("file-secret\n")
    (tmp_path / "config.yml").write_text(
        "accounts:\n  - name: prod\n    access_key_id: ak\n"
        "    secret_access_key_file: sk.txt\n    regions: [gz]\n"
    )
    account = load_config(tmp_path / "config.yml").accounts[0]
    assert account.secret_access_key.value == "file-secret"
    assert account.secret_access_key.path == tmp_path / "sk.txt"


def test_all_problems_are_reported_together_with_their_paths() -> None:
    data = {
        "accounts": [
            {"name": "a", "access_key_id": "ak", "secret_access_key": "sk", "regions": ["bj"]},
            {"name": "b", "access_key_id": "ak", "regions": ["bj", "mars"], "colour": "red"},
        ],
        "refresh": {"mode": "sometimes", "interval": "5 minutes"},
        "page_size": 5000,
        "image_types": ["All", "Everything"],
        "labels": ["os_name", "owner"],
        "surprise": 1,
    }
    problems = _problems(data)
    expected_paths = [
        "accounts[1].colour:",
        "accounts[1].regions[1]:",
        "accounts[1]:",
        "refresh.mode:",
        "refresh.interval:",
        "page_size:",
        "image_types[1]:",
        "labels[1]:",
        "config.surprise:",
    ]
    for path in expected_paths:
        assert any(p.startswith(path) for p in problems), (path, problems)


def test_unknown_region_is_allowed_with_an_explicit_endpoint() -> None:
    data = {"accounts": [{**MINIMAL["accounts"][0], "regions": ["xy"], "endpoint": "http://x"}]}
    assert parse_config(data, environ={}).accounts[0].regions == ("xy",)


def test_several_regions_need_a_region_placeholder_in_the_endpoint() -> None:
    data = {
        "accounts": [
            {**MINIMAL["accounts"][0], "regions": ["bj", "gz"], "endpoint": "http://proxy"}
        ]
    }
    assert any("{region}" in p for p in _problems(data))


def test_duplicate_account_names_are_refused() -> None:
    data = {"accounts": [MINIMAL["accounts"][0], MINIMAL["accounts"][0]]}
    assert any("used more than once" in p for p in _problems(data))


def test_max_staleness_below_interval_is_refused() -> None:
    data = {**MINIMAL, "refresh": {"interval": "10m", "max_staleness": "5m"}}
    assert any(p.startswith("refresh.max_staleness:") for p in _problems(data))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (45, 45)]
)
def test_durations_are_read_in_prometheus_style(text: object, seconds: float) -> None:
    config = parse_config({**MINIMAL, "refresh": {"min_interval": text}}, environ={})
    assert config.refresh.min_interval == pytest.approx(seconds)


def test_empty_file_names_the_missing_accounts(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yml")
    assert info.value.problems == ["config.accounts: is required"]


def test_invalid_yaml_is_reported_with_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("accounts: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "config.yml")


def test_secrets_never_appear_in_problem_messages() -> None:
    data = {
        "accounts": [
            {
                "name": "prod",
                "access_key_id": "ak",
                "secret_access_key": "super-secret-value",
                "security_token": "token-secret-value",
                "regions": ["nowhere"],
            }
        ],
        "page_size": "many",
    }
    text = "\n".join(_problems(data))
    assert "super-secret-value" not in text and "token-secret-value" not in text


def test_the_access_key_id_can_come_from_a_file_too(tmp_path: Path) -> None:
    (tmp_path / "ak").write_text("file-ak\n")
    (tmp_path / "sk").write_text("file-sk\n")
    (tmp_path / "config.yml").write_text(
        "accounts:\n  - name: prod\n    access_key_id_file: ak\n"
        "    secret_access_key_file: sk\n    regions: [gz]\n"
    )
    account = load_config(tmp_path / "config.yml").accounts[0]
    assert (account.access_key_id.value, account.secret_access_key.value) == ("file-ak", "file-sk")

    (tmp_path / "ak").write_text("rotated-ak\n")
    assert account.access_key_id.value == "rotated-ak"


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sk").write_text("\n")
    data = {"accounts": [{**MINIMAL["accounts"][0], "secret_access_key_file": "sk"}]}
    del data["accounts"][0]["secret_access_key"]
    with pytest.raises(ConfigError, match="is empty"):
        parse_config(data, base_dir=tmp_path, environ={})


def test_an_emptied_secret_file_keeps_the_old_secret_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sk").write_text("first\n")
    source = SecretSource.from_file(tmp_path / "sk")
    (tmp_path / "sk").write_text("")

    values = [source.value for _ in range(5)]

    assert values == ["first"] * 5
    assert len([r for r in caplog.records if "is empty" in r.getMessage()]) == 1


def test_an_unset_variable_is_reported_once_per_key() -> None:
    data = {"accounts": [{**MINIMAL["accounts"][0], "access_key_id": "${NOPE_AK}"}]}
    problems = _problems(data)
    assert [p for p in problems if p.startswith("accounts[0].access_key_id:")] == [
        "accounts[0].access_key_id: environment variable NOPE_AK is not set; "
        "export it or write ${NOPE_AK:-default}"
    ]


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999/{region}", "http://[::1/{region}"])
def test_an_endpoint_that_is_no_url_is_reported(endpoint: str) -> None:
    data = {"accounts": [{**MINIMAL["accounts"][0], "endpoint": endpoint}]}
    assert any(p.startswith("accounts[0].endpoint: is not a usable URL") for p in _problems(data))


@pytest.mark.parametrize("duration", [".nan", ".inf", "1e9", "100000000s"])
def test_durations_must_be_finite_and_reasonable(duration: str) -> None:
    data = {**MINIMAL, "refresh": {"interval": yaml.safe_load(duration)}}
    assert any(p.startswith("refresh.interval:") for p in _problems(data))


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_bytes(b"# Z\xfcrich\naccounts: []\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(tmp_path / "config.yml")


def test_a_secret_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "sk")
    data = {"accounts": [{**MINIMAL["accounts"][0], "secret_access_key_file": "sk"}]}
    del data["accounts"][0]["secret_access_key"]
    problems = _problems(data, base_dir=tmp_path)
    assert any("not a regular file" in p for p in problems)


def test_a_nested_reference_in_a_default_is_refused() -> None:
    data = {"accounts": [{**MINIMAL["accounts"][0], "name": "${A:-${B}}"}]}
    assert any("cannot hold another" in p for p in _problems(data, environ={"B": "b"}))
