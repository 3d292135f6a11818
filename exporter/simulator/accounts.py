"""Describe simulated BCE accounts and the demo account used by `make run`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Obviously fake demo keys: "fa4e" and "5ec2e7" read as "fake" and "secret".
DEMO_ACCESS_KEY_ID = "fa4e" * 8
DEMO_SECRET_ACCESS_KEY = "5ec2e7" * 5 + "00"
DEMO_IMAGES: dict[str, dict[str, int]] = {
    "bj": {
        "System": 40,
        "Custom": 17,
        "Integration": 3,
        "Sharing": 2,
        "GpuBccSystem": 6,
        "GpuBccCustom": 2,
    },
    "gz": {"System": 38, "Custom": 3},
    "su": {"System": 35, "Custom": 0},
}


@dataclass(frozen=True)
class SimulatedAccount:
    """Hold one account's keys and its image counts per region and image type."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    images: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def default_accounts() -> list[SimulatedAccount]:
    """Return the demo account: three regions, a mix of system, custom and shared images."""
    return [
        SimulatedAccount(
            access_key_id=DEMO_ACCESS_KEY_ID,
            secret_access_key=DEMO_SECRET_ACCESS_KEY,
            images={region: dict(counts) for region, counts in DEMO_IMAGES.items()},
        )
    ]
