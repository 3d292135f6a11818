"""Section 1: count the ListImages calls of one refresh against the fewest possible."""

from __future__ import annotations

from bench.harness import exporter_for, filter_sizes, keys, minimum_calls, refresh
from bench.plan import Plan, all_filter
from bench.table import Row
from exporter.settings import DEFAULT_IMAGE_TYPES
from exporter.simulator import SimulatedAccount, Simulator

SECTION = 1
REGION = "bj"


def run(plan: Plan) -> list[Row]:
    """Refresh one target per dataset size and compare the requests the simulator saw."""
    return [_dataset(plan, size) for size in plan.call_sizes]


def _dataset(plan: Plan, size: int) -> Row:
    (key,) = keys(1)
    counts = all_filter(size)
    account = SimulatedAccount(key.access_key_id, key.secret_access_key, images={REGION: counts})
    minimum = minimum_calls(filter_sizes(counts, DEFAULT_IMAGE_TYPES), plan.calls_page_size)
    seen: list[int] = []
    with Simulator([account]) as sim:
        exporter = exporter_for([(key, REGION, sim.endpoint)], page_size=plan.calls_page_size)
        try:
            for _ in range(plan.repeats):
                sim.clear_requests()
                refresh(exporter)
                seen.append(len(sim.requests))
        finally:
            exporter.stop()
    worst = max(seen)
    ratio = worst / minimum
    return Row(
        SECTION,
        f"API calls per refresh, {size:,} image{'' if size == 1 else 's'}, "
        f"page size {plan.calls_page_size}",
        plan.repeats,
        f"{worst} calls",
        f"{minimum} calls",
        ratio,
        "= 1",
        all(n == minimum for n in seen),
    )
