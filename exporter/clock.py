"""Keep the time requests are signed with, corrected by the skew seen in `Date` headers."""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta, timezone

# `Date` has whole-second resolution: a smaller difference is measurement noise.
MIN_CORRECTION_SECONDS = 1.5


class SigningClock:
    """Measure the API's clock against ours and, after `RequestExpired`, sign on its time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.measured: float | None = None

    def now(self) -> datetime:
        """Return the instant to sign with: local time plus the adopted offset."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset)

    def observe(self, date_header: str | None, sent_at: float, received_at: float) -> float | None:
        """Measure the skew from a response's `Date`; return it, or None without a usable date."""
        if not date_header:
            return None
        try:
            server_time = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            return None
        self.measured = server_time - (sent_at + received_at) / 2
        return self.measured

    def correct(self) -> float | None:
        """Adopt the measured skew as the signing offset; return it, or None if nothing changed."""
        if self.measured is None or abs(self.measured - self.offset) < MIN_CORRECTION_SECONDS:
            return None
        self.offset = round(self.measured)
        return self.offset
