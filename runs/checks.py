"""The checks every entry point shares: one line that names the key, the value and what is allowed."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A config value that cannot be run."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    """Raise ``ConfigError`` "<key>=<value> is not allowed: <allowed>" unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def is_number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v) -> bool:
    """An int (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool)
