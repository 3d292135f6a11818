"""Parse Prometheus-style durations such as `90s`, `5m` or `1h30m` into seconds."""

from __future__ import annotations

import math
import re

from exporter.errors import shown

MAX_SECONDS = 366 * 86400.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or a plain number of seconds.

    Raises ValueError with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {shown(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        parts = _PART.findall(text)
        if "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {shown(value)}")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    else:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {shown(value)}")
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"a duration must be finite and at most a year, got {shown(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {shown(value)}")
    return seconds
