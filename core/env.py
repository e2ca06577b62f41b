"""Typed readers for settings that come from the environment.

Each reader fails at start-up with ``ImproperlyConfigured`` naming the variable, so a typo in a
deployment shows up as one clear line instead of a surprise hours later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

Number = TypeVar("Number", int, float)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)")


def _env_number(
    name: str, default: Number, parse: type[Number], minimum: Number | None, maximum: Number | None
) -> Number:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = parse(value)
    except ValueError:
        kind = "an integer" if parse is int else "a number"
        raise ImproperlyConfigured(f"{name}={value!r} is not {kind}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    return _env_number(name, default, int, minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    return _env_number(name, default, float, minimum, maximum)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int_list(name: str, default: list[int], *, minimum: int, maximum: int) -> list[int]:
    items = env_list(name, [str(number) for number in default])
    try:
        numbers = [int(item) for item in items]
    except ValueError:
        raise ImproperlyConfigured(f"{name}={','.join(items)!r} is not a comma-separated list of integers") from None
    if not numbers or any(not minimum <= number <= maximum for number in numbers):
        raise ImproperlyConfigured(f"{name}: every number must be between {minimum} and {maximum}")
    return numbers


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return Path(value).expanduser().resolve() if value else default


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    """A URL whose scheme must be one of ``schemes``; empty means "not set"."""
    value = env_str(name, default)
    if value and value.split("://", 1)[0].lower() not in schemes:
        raise ImproperlyConfigured(f"{name}={value!r} must start with one of: {', '.join(s + '://' for s in schemes)}")
    return value


def env_secret_key(name: str, *, path: Path, required: bool) -> str:
    """The variable's value; or, unless ``required``, a key generated once and kept in ``path``
    (created readable by its owner only, and refused if others can read it)."""
    value = env_str(name, "")
    if value:
        return value
    if required:
        raise ImproperlyConfigured(f"{name} must be set (REQUIRE_SECRET_KEY is on)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, one writes the key and the other reads it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ImproperlyConfigured(f"{path} holds the secret key and must be readable by its owner only") from None
        key = path.read_text().strip()
        if not key:
            raise ImproperlyConfigured(f"{path} is empty: remove it to have a new secret key generated") from None
        return key
    key = get_random_secret_key()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key
