"""``key=value`` command-line arguments for the analysis scripts (the same form as Hydra's)."""

from __future__ import annotations

import sys


def parse(argv: list[str] | None, allowed: dict[str, str], required: tuple[str, ...]) -> dict:
    """Parse ``key=value`` words; ``allowed`` maps each key to its default (None: required)."""
    argv = sys.argv[1:] if argv is None else argv
    out = {k: v for k, v in allowed.items() if v is not None}
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or key not in allowed:
            raise SystemExit(
                f"argument {word!r} not understood; allowed: "
                + ", ".join(f"{k}=..." for k in allowed)
            )
        out[key] = value
    missing = [k for k in required if k not in out]
    if missing:
        raise SystemExit(f"missing argument(s): {', '.join(f'{k}=...' for k in missing)}")
    return out


def boolean(args: dict, key: str) -> bool:
    """``args[key]`` read as true/false (a command-line word); anything else exits with one line."""
    value = str(args[key]).strip().lower()
    if value not in ("true", "false"):
        raise SystemExit(f"error: {key}={args[key]!r} is not allowed: true or false")
    return value == "true"
