"""Load a simulator scenario file: accounts with image counts per region, and faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.errors import ConfigError
from exporter.simulator.accounts import SimulatedAccount
from exporter.simulator.dataset import count_problems
from exporter.simulator.faults import FAULT_FIELDS, Fault

SCENARIO_KEYS = ("seed", "accounts", "faults")
ACCOUNT_KEYS = ("access_key_id", "secret_access_key", "security_token", "images")
FAULT_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "access_key_id": (str,),
    "region": (str,),
    "image_type": (str,),
    "page": (int,),
    "times": (int,),
    "status": (int,),
    "code": (str,),
    "message": (str,),
    "delay": (int, float),
    "retry_after": (int, float),
}


@dataclass(frozen=True)
class Scenario:
    """Hold what a scenario file asks for; `accounts` is None when the file names none."""

    seed: int | None = None
    accounts: list[SimulatedAccount] | None = None
    faults: list[Fault] = field(default_factory=list)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file, reporting every problem at once."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError([f"cannot read {path}: {err}"]) from err
    return parse_scenario(document)


def parse_scenario(document: Any) -> Scenario:
    """Validate a parsed scenario document and build its accounts and faults."""
    if document is None:
        return Scenario()
    if not isinstance(document, dict):
        raise ConfigError(["the file must hold a mapping with keys seed, accounts, faults"])
    problems = _unknown_keys(document, SCENARIO_KEYS, "top level")
    seed = document.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        problems.append(f"seed must be a whole number, got {seed!r}")
    accounts = None
    if "accounts" in document:
        accounts = _accounts(document["accounts"], problems)
    faults = _faults(document.get("faults") or [], problems)
    if problems:
        raise ConfigError(problems)
    return Scenario(seed, accounts, faults)


def _accounts(entries: Any, problems: list[str]) -> list[SimulatedAccount]:
    if not isinstance(entries, list) or not entries:
        problems.append("accounts must be a non-empty list of mappings")
        return []
    accounts = []
    for number, entry in enumerate(entries):
        where = f"accounts[{number}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping with keys {', '.join(ACCOUNT_KEYS)}")
            continue
        problems.extend(_unknown_keys(entry, ACCOUNT_KEYS, where))
        key_id, secret = entry.get("access_key_id"), entry.get("secret_access_key")
        token = entry.get("security_token")
        for key, value in (("access_key_id", key_id), ("secret_access_key", secret)):
            if not isinstance(value, str) or not value:
                problems.append(f"{where}.{key} is required and must be a string")
        if token is not None and not isinstance(token, str):
            problems.append(f"{where}.security_token must be a string or null")
        images = _images(entry.get("images") or {}, where, problems)
        accounts.append(SimulatedAccount(str(key_id), str(secret), token, images))
    return accounts


def _images(entry: Any, where: str, problems: list[str]) -> dict[str, dict[str, int]]:
    if not isinstance(entry, dict):
        problems.append(f"{where}.images must map region to {{imageType: count}}")
        return {}
    images = {}
    for region, counts in entry.items():
        if not isinstance(counts, dict):
            problems.append(f"{where}.images.{region} must map imageType to a count")
            continue
        found = count_problems(counts)
        problems.extend(f"{where}.images.{region}: {problem}" for problem in found)
        images[str(region)] = dict(counts) if not found else {}
    return images


def _faults(entries: Any, problems: list[str]) -> list[Fault]:
    if not isinstance(entries, list):
        problems.append("faults must be a list of mappings")
        return []
    faults = []
    for number, entry in enumerate(entries):
        where = f"faults[{number}]"
        if not isinstance(entry, dict) or "kind" not in entry:
            problems.append(f"{where} must be a mapping with at least a kind")
            continue
        found = _unknown_keys(entry, FAULT_FIELDS, where) + _wrong_types(entry, where)
        if found:
            problems.extend(found)
            continue
        try:
            faults.append(Fault(**entry))
        except ConfigError as err:
            problems.extend(f"{where}: {problem}" for problem in err.problems)
    return faults


def _wrong_types(entry: dict[str, Any], where: str) -> list[str]:
    wrong = []
    for key, value in entry.items():
        allowed = FAULT_TYPES.get(key)
        if value is None or allowed is None:
            continue
        if isinstance(value, bool) or not isinstance(value, allowed):
            names = " or ".join(kind.__name__ for kind in allowed)
            wrong.append(f"{where}.{key} must be {names}, got {value!r}")
    return wrong


def _unknown_keys(entry: dict[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    return [
        f"{where}: unknown key {key!r}; known keys are {', '.join(known)}"
        for key in entry
        if key not in known
    ]
