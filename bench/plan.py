"""Choose the datasets, sizes and repeat counts of a full or a quick benchmark run."""

from __future__ import annotations

from dataclasses import dataclass

# Shares of a large region's images by kind; `All` lists System, Custom and Integration.
LARGE_MIX = (
    ("System", 0.30),
    ("Integration", 0.04),
    ("Sharing", 0.02),
    ("GpuBccSystem", 0.03),
    ("GpuBccCustom", 0.01),
)
Counts = dict[str, int]


@dataclass(frozen=True)
class Plan:
    """Hold every size the sections use; `quick` shrinks them for the smoke test."""

    quick: bool
    repeats: int
    calls_page_size: int
    latency: float
    wall_single: int
    wall_many: int
    scrape_accounts: int
    scrape_regions: int
    scrapers: tuple[int, ...]
    scrapes_per_level: int
    cpu_images: int
    memory_sizes: tuple[int, ...]
    sdk_single: int
    sdk_many: int
    sdk_accounts: int
    sdk_regions: int
    sdk_repeats: int

    @property
    def call_sizes(self) -> tuple[int, ...]:
        """Return the API-call datasets: empty, one image, around one page, and 100 pages."""
        page = self.calls_page_size
        return (0, 1, page - 1, page, page + 1, 100 * page)


def full_plan(repeats: int) -> Plan:
    """Return the plan of `make bench`."""
    return Plan(
        quick=False,
        repeats=repeats,
        calls_page_size=1000,
        latency=0.05,
        wall_single=10_000,
        wall_many=250,
        scrape_accounts=3,
        scrape_regions=10,
        scrapers=(1, 10, 50),
        scrapes_per_level=300,
        cpu_images=10_000,
        memory_sizes=(1_000, 10_000, 100_000, 200_000),
        sdk_single=10_000,
        sdk_many=2_000,
        sdk_accounts=3,
        sdk_regions=10,
        # The SDK loop over 30 targets takes about half a minute a run.
        sdk_repeats=max(1, repeats - 1),
    )


def quick_plan() -> Plan:
    """Return a plan that runs every row on tiny datasets, once, in seconds."""
    return Plan(
        quick=True,
        repeats=1,
        calls_page_size=10,
        latency=0.05,
        wall_single=300,
        wall_many=20,
        scrape_accounts=2,
        scrape_regions=2,
        scrapers=(1, 10, 50),
        scrapes_per_level=50,
        cpu_images=200,
        memory_sizes=(100, 200, 400, 800),
        sdk_single=200,
        sdk_many=50,
        sdk_accounts=2,
        sdk_regions=2,
        sdk_repeats=1,
    )


def all_filter(total: int) -> Counts:
    """Split `total` images between System and Custom, so the `All` filter lists them all."""
    system = total * 3 // 10
    return {"System": system, "Custom": total - system}


def large_region(total: int) -> Counts:
    """Spread `total` images over the kinds a large region holds; Custom takes the rest."""
    counts = {kind: int(total * share) for kind, share in LARGE_MIX}
    counts["Custom"] = total - sum(counts.values())
    return counts


def typical_region(index: int) -> Counts:
    """Return a region as most accounts have it: public images, a few custom and shared."""
    return {
        "System": 100 + 7 * (index % 9),
        "Custom": 4 + index % 17,
        "Integration": 4 + index % 7,
        "Sharing": index % 6,
        "GpuBccSystem": 10 + index % 11,
        "GpuBccCustom": index % 4,
    }


def scaled_region(index: int, total: int) -> Counts:
    """Return `typical_region` scaled to about `total` images; Custom takes the rest."""
    base = typical_region(index)
    factor = total / sum(base.values())
    counts = {kind: int(n * factor) for kind, n in base.items() if kind != "Custom"}
    counts["Custom"] = total - sum(counts.values())
    return counts
