"""Small helpers shared by the loaders and readers of the project's data: how a path and a value
are named in an error message, and a nested lookup that tolerates missing levels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def display_path(path: Path | str) -> str:
    """`path` relative to the working directory when it is below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def show_value(value: Any) -> str:
    """A TOML value as an error message names it: true/false, 'text', a table, an array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def dig(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...``, or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping
