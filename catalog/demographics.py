"""Demographic groups of viewers, as the cold-start lists, the per-group metrics and the fairness
reports use them."""

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


def cold_start_keys(age: int | None, gender: str) -> list[str]:
    """The demographic groups a viewer's cold-start list can come from, most specific first:
    the artifact keeps a list per key, serving takes the first key it has a list for."""
    bucket = age_bucket(age) if age is not None else None
    keys = [f"gender:{gender}|age:{bucket}"] if gender and bucket else []
    if gender:
        keys.append(f"gender:{gender}")
    if bucket:
        keys.append(f"age:{bucket}")
    return keys


GENDERS = {"M": "male", "F": "female", "X": "other"}
DIMENSIONS = ("gender", "age", "occupation", "gender x age", "gender x occupation")


def demographic_groups(gender: str, age: int | None, occupation: str) -> dict[str, str]:
    """A viewer's group in each of ``DIMENSIONS`` (unknown where the platform did not say)."""
    gender_label = GENDERS.get(gender, "unknown")
    age_label = age_bucket(age)
    occupation_label = occupation or "unknown"
    return {
        "gender": gender_label,
        "age": age_label,
        "occupation": occupation_label,
        "gender x age": f"{gender_label} {age_label}",
        "gender x occupation": f"{gender_label} {occupation_label}",
    }


_GENDER_ORDER = {label: index for index, label in enumerate([*GENDERS.values(), "unknown"])}
_AGE_ORDER = {label: index for index, (_, _, label) in enumerate(AGE_BUCKETS)}


def group_order(dimension: str, label: str) -> tuple[tuple[int, str], ...]:
    """A sort key for ``dimension``'s groups in their natural order: genders as ``GENDERS`` has
    them, ages youngest first, occupations alphabetically, "unknown" last in each; a group of an
    intersection ("female 25-34") by its gender, then the rest."""

    def part(kind: str, value: str) -> tuple[int, str]:
        if value == "unknown":
            return (1_000, "")
        if kind == "gender":
            return (_GENDER_ORDER.get(value, 999), value)
        if kind == "age":
            return (_AGE_ORDER.get(value, 999), value)
        return (0, value.lower())

    if " x " in dimension:
        first, second = dimension.split(" x ", 1)
        gender, _, rest = label.partition(" ")  # a gender's label is one word
        return (part(first, gender), part(second, rest))
    return (part(dimension, label),)
