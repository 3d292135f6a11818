"""Feed arbitrary bytes, JSON and YAML to the parsers: each parses or raises our own error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.config import ACCOUNT_KEYS, TOP_KEYS, load_config, parse_config
from exporter.errors import ApiError, ConfigError
from exporter.responses import Listing, parse_error, parse_page

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
IMAGE_KEYS = st.sampled_from(["id", "type", "osType", "osName", "osVersion", "osArch", "status"])
PAGE = st.fixed_dictionaries(
    {},
    optional={
        "images": st.lists(st.dictionaries(IMAGE_KEYS, JSON, max_size=7) | JSON, max_size=5)
        | JSON,
        "isTruncated": st.booleans() | JSON,
        "nextMarker": st.text(max_size=6) | JSON,
        "marker": JSON,
    },
)
CONFIG_KEYS = st.sampled_from(sorted(TOP_KEYS | ACCOUNT_KEYS | {"mode", "interval", "x"}))
YAML_TREE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CONFIG_KEYS, inner, max_size=5),
    max_leaves=25,
)


def _parse_page(body: bytes) -> None:
    try:
        page = parse_page(body, 5, Listing())
    except ApiError as err:
        assert err.code == "invalid_response"
        return
    assert isinstance(page.images, list) and all(isinstance(i, dict) for i in page.images)
    assert page.next_marker is None or isinstance(page.next_marker, str)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_the_page_parser(body: bytes) -> None:
    _parse_page(body)


@settings(max_examples=400, deadline=None)
@given(PAGE | JSON)
def test_arbitrary_json_never_escapes_the_page_parser(document: object) -> None:
    _parse_page(json.dumps(document).encode())


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=100, max_value=599),
    st.binary(max_size=120) | JSON.map(lambda d: json.dumps(d).encode()),
    st.text(max_size=30),
)
def test_arbitrary_error_bodies_give_a_bounded_code(status: int, body: bytes, retry: str) -> None:
    error = parse_error(status, body, {"retry-after": retry})
    assert isinstance(error, ApiError)
    assert error.code == f"http_{status}" or error.code.isalpha() or error.code == "throttled"
    assert error.retry_after is None or error.retry_after >= 0


@settings(max_examples=300, deadline=None)
@given(YAML_TREE)
def test_arbitrary_config_trees_give_a_config_or_config_error(tree: object) -> None:
    try:
        parse_config(tree, environ={})
    except ConfigError as err:
        assert err.problems and all(isinstance(p, str) and ": " in p for p in err.problems)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=200))
@example("x: 2001-02-30")
@example("- " * 5000)
@example("accounts: &a [*a]\nrefresh: &r {mode: *r}")
@example("accounts: [{name: &n [*n], regions: &r [*r, *r]}]")
@example("\x00")
def test_arbitrary_yaml_text_gives_a_config_or_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, environ={})
    except ConfigError as err:
        assert err.problems


def test_a_valid_tree_round_trips_through_yaml(tmp_path: Path) -> None:
    tree = {
        "accounts": [
            {"name": "a", "access_key_id": "k", "secret_access_key": "s", "regions": ["bj"]}
        ]
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(tree))
    assert load_config(path, environ={}).accounts[0].regions == ("bj",)


def test_deeply_nested_json_is_an_invalid_response_not_a_crash() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    _parse_page(body)
    assert parse_error(500, body, {}).code == "http_500"


def test_lone_surrogates_in_labels_are_replaced_so_the_page_stays_encodable() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.core import GaugeMetricFamily

    from exporter.inventory import Tally, owner_filters

    page = parse_page(
        b'{"images": [{"id": "m-1", "type": "System", "osName": "A\\ud800"}]}', 5, Listing()
    )
    tally = Tally(("os_name",), owner_filters(["All"]))
    tally.add_page(page.images, "All")
    (label,) = next(iter(tally.counts))

    assert label == "A?"
    family = GaugeMetricFamily("x", "y", labels=["os_name"])
    family.add_metric([label], 1)

    class _One:
        def collect(self) -> list[GaugeMetricFamily]:
            return [family]

    assert b'os_name="A?"' in generate_latest(_One())
