"""Demographic groups of viewers, as the cold-start lists and the per-group metrics use them."""

from __future__ import annotations

AGE_BUCKETS = (
    (0, 17, "<18"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 200, "55+"),
)


def age_bucket(age: int | None) -> str:
    if age is None:
        return "unknown"
    return next(label for low, high, label in AGE_BUCKETS if low <= age <= high)
