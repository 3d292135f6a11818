"""Simulate the BCC ListImages API on loopback: signing, paging, datasets and faults."""

from exporter.simulator.accounts import (
    DEMO_ACCESS_KEY_ID,
    DEMO_SECRET_ACCESS_KEY,
    SimulatedAccount,
    default_accounts,
)
from exporter.simulator.faults import FAULT_KINDS, Fault
from exporter.simulator.pipeline import RecordedRequest
from exporter.simulator.server import Simulator

__all__ = [
    "DEMO_ACCESS_KEY_ID",
    "DEMO_SECRET_ACCESS_KEY",
    "FAULT_KINDS",
    "Fault",
    "RecordedRequest",
    "SimulatedAccount",
    "Simulator",
    "default_accounts",
]
