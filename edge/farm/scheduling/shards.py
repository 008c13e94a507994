"""Sharded runs: `edge bench --shard i/n` measures a stable slice of the run's cells, so that n
machines (or n CI jobs) share one matrix and `edge merge` puts their runs back together.

The slice depends only on the cells the matrix defines (its rules, the models and variants, the
device catalog), never on the machine: every machine given the same matrix computes the same
n slices, and together they hold every cell exactly once.

How cells are dealt:

- Cells that run on the measuring machine's own CPU (the host and the emulated phones) are
  grouped by ``model|runtime``: a model's variants on the host and the phones form one
  comparison group, timed interleaved on one machine (`edge.farm.scheduling.interleaved`), and
  an emulated phone's slowdown is its p50 over the host cell's from those same rounds. Thread
  counts of browser cells are resolved per machine (they depend on its cores and emulation
  method), so they cannot decide a shard either. A remote device's cells (a profile with an
  ``endpoint`` or ``adb``) are grouped by ``model|variant|runtime|device``.
- The groups are sorted by that key and dealt round-robin: group k (0-based) goes to shard
  ``k mod n + 1``. Dealing rather than cutting contiguous blocks spreads each model, runtime and
  device over the shards, so shards take similar times.

A shard may be empty when there are fewer groups than shards; it then records nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge.errors import EdgeError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 <= i <= n")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, flag: str = "--shard") -> Shard:
    """``"i/n"`` as a `Shard`; `EdgeError` naming `flag` unless 1 <= i <= n."""
    m = _SHARD.match(str(text))
    if not m:
        raise EdgeError(f"{flag} {text!r}: expected i/n with whole numbers, e.g. 1/4 "
                        "(shard i of n, counted from 1)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1:
        raise EdgeError(f"{flag} {text!r}: the number of shards must be at least 1")
    if not 1 <= index <= count:
        raise EdgeError(f"{flag} {text!r}: the shard must be between 1 and {count} "
                        f"(shards are counted from 1)")
    return Shard(index, count)


def shard_key(cell, remote: Iterable[str] = ()) -> str:
    """The group a cell is dealt with (see the module docstring): ``model|runtime`` on this
    machine's CPU, ``model|variant|runtime|device`` on a remote device."""
    if cell.device in set(remote):
        return f"{cell.model}|{cell.variant}|{cell.runtime}|{cell.device}"
    return f"{cell.model}|{cell.runtime}"


def remote_devices(catalog: Mapping[str, object]) -> set[str]:
    """The catalog's profiles that are real devices elsewhere (an ``endpoint`` or ``adb``)."""
    return {name for name, p in catalog.items()
            if getattr(p, "endpoint", None) or getattr(p, "adb", None)}


def shard_cells(cells: list, shard: Shard | None, catalog: Mapping[str, object] | None = None
                ) -> list:
    """The cells of `shard` (all of them when None), in their original order."""
    if shard is None:
        return list(cells)
    remote = remote_devices(catalog or {})
    groups = sorted({shard_key(c, remote) for c in cells})
    mine = {g for k, g in enumerate(groups) if k % shard.count == shard.index - 1}
    return [c for c in cells if shard_key(c, remote) in mine]
