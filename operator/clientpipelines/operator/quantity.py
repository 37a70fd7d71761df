"""Sizes as people write and read them: Kubernetes-style binary quantities (pure)."""

from __future__ import annotations

import re

_UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
QUANTITY = re.compile(r"^([1-9][0-9]*)(Ki|Mi|Gi|Ti)?$")


def parse_quantity(text: str) -> int:
    """Bytes of a Kubernetes-style binary quantity: 1073741824, 512Mi, 1Gi (pure)."""
    match = QUANTITY.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size like 512Mi, 1Gi or a number of bytes")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


def human_bytes(n: int) -> str:
    """1.5 GiB, 980 KiB, 12 B: one decimal below 10 of a unit, none above (pure)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"
