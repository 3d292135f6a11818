"""Scrape a /metrics URL from concurrent threads, as Prometheus would, and time each scrape.

Runs as a child process (`python -m bench.scraper URL SCRAPERS SCRAPES`) so the scrapers'
CPU does not share an interpreter with the server under test; prints one JSON line.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from http.client import HTTPConnection
from urllib.parse import urlsplit

from bench.harness import run_together

# What Prometheus 2.x sends by default: OpenMetrics preferred, gzip accepted.
HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.53.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
# Prometheus's default scrape timeout: a slower scrape is a failed one.
TIMEOUT_SECONDS = 10


def scrape_all(url: str, scrapers: int, scrapes: int) -> dict[str, object]:
    """Send `scrapes` requests spread over `scrapers` threads; return latencies and totals."""
    parts = urlsplit(url)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    shares = [scrapes // scrapers + (1 if i < scrapes % scrapers else 0) for i in range(scrapers)]

    def scraper(count: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for _ in range(count):
            started = time.perf_counter()
            try:
                status, size = _get(parts.netloc, parts.path)
                failure = None if status == 200 and size else f"status {status}, {size} bytes"
            except OSError as err:
                failure = type(err).__name__
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if failure is not None:
                    failures.append(failure)

    elapsed = run_together([functools.partial(scraper, n) for n in shares])
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "failures": failures[:5],
        "failed": len(failures),
    }


def _get(netloc: str, path: str) -> tuple[int, int]:
    connection = HTTPConnection(netloc, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path, headers=HEADERS)
        response = connection.getresponse()
        return response.status, len(response.read())
    finally:
        connection.close()


def main() -> None:
    """Parse the arguments, scrape, print the result as JSON."""
    url, scrapers, scrapes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(scrape_all(url, scrapers, scrapes)), flush=True)


if __name__ == "__main__":
    main()
