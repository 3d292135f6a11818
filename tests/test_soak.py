"""Run a short soak: threads and open descriptors must come back to their starting level."""

from __future__ import annotations

from scripts.soak import soak


def test_threads_and_descriptors_return_to_their_starting_level() -> None:
    start, end = soak(refreshes=14, scrapes=210)

    assert end.threads <= start.threads, (start, end)
    assert end.fds <= start.fds, (start, end)
