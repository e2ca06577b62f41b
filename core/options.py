"""``NAME=VALUE`` options for the numeric and yes/no fields of a dataclass (simulator options, release
thresholds), typed by the dataclass's own annotations."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import fields, is_dataclass

BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def options_parse(kind: type, pairs: Iterable[str], *, what: str) -> dict[str, int | float | bool]:
    """``["seed=7", "viewers=300"]`` -> ``{"seed": 7, "viewers": 300}`` for the dataclass ``kind``.

    A name that is not one of its fields, or a value that is not a number of the field's type,
    raises ``ValueError`` with a message naming ``what`` (e.g. "simulator option").
    """
    if not is_dataclass(kind):
        raise TypeError(f"{kind!r} is not a dataclass")
    # Resolved annotations: with `from __future__ import annotations` they are strings otherwise.
    types = typing.get_type_hints(kind)
    names = [field.name for field in fields(kind) if types[field.name] in (int, float, bool)]
    values: dict[str, int | float | bool] = {}
    for pair in pairs:
        name, _, raw = pair.strip().partition("=")
        if name not in names:
            raise ValueError(f"unknown {what} {name!r}: use one of {', '.join(names)}")
        if types[name] is bool:
            if raw.lower() not in BOOLEANS:
                raise ValueError(f"{what} {name}={raw!r} is not one of {', '.join(BOOLEANS)}")
            values[name] = BOOLEANS[raw.lower()]
            continue
        number_type = float if types[name] is float else int
        try:
            values[name] = number_type(raw)
        except ValueError:
            noun = "a whole number" if number_type is int else "a number"
            raise ValueError(f"{what} {name}={raw!r} is not {noun}") from None
    return values
