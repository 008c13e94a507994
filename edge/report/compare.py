"""Compare two runs cell by cell, and say which differences are real.

A difference between run A and run B counts as *significant* only when the two runs' raw timed
samples (the tidy table's ``samples`` column) are distinguishable by `edge.stats`'s rule, the
one the rankings use for their tie groups: the two-sided Mann-Whitney U test rejects "same
distribution" at p < `edge.stats.ALPHA` (0.01) **and** the medians differ by more than
`edge.stats.REL` (3 %, the protocol's precision target) of the smaller one. A rank test makes no
assumption about the shape of the latency distribution (long tails, two modes), and the 3 %
floor keeps differences the protocol cannot resolve from counting however many runs there are.

A cell is judged only when it is ``ok`` in both runs and both have raw samples; otherwise it is
not significant and the note says why. ``ratio`` is ``p50_b / p50_a`` (above 1: B is slower),
``delta_ms`` the difference of the samples' medians, ``rel_diff`` that difference over the
smaller median, ``p_value`` the rank test's.

Cells measured in only one of the runs are listed too (``presence`` "only A" / "only B").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table

from edge.stats import ALPHA, REL, distinguishable

#: The columns of `compare`'s result, in order.
COMPARE_COLUMNS = (
    "cell_id", "model", "variant", "runtime", "device", "threads", "presence", "status_a",
    "status_b", "p50_a", "p50_b", "ratio", "mean_a", "mean_b", "std_a", "std_b", "n_a", "n_b",
    "delta_ms", "rel_diff", "p_value", "significant", "note",
)

_CELL_COLUMNS = ("model", "variant", "runtime", "device", "threads")


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _value(row: pd.Series | None, col: str) -> Any:
    if row is None or col not in row.index:
        return None
    value = row[col]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # a list or array: present
        pass
    return value


def _samples(row: pd.Series | None) -> list[float]:
    """The row's raw timed samples (finite numbers only); [] when there are none."""
    if row is None or "samples" not in row.index:
        return []
    raw = row["samples"]
    if not isinstance(raw, list | tuple | np.ndarray):
        return []
    out = []
    for v in raw:
        number = _num(v) if not isinstance(v, bool) else math.nan
        if not math.isnan(number):
            out.append(number)
    return out


def _fmt_ms(x: float) -> str:
    return "?" if math.isnan(x) else (f"{x:.0f} ms" if abs(x) >= 100 else f"{x:.3g} ms")


def _cell_ms(x: Any) -> str:
    number = _num(x)
    return "-" if math.isnan(number) else _fmt_ms(number)


def _fmt_p(p: float) -> str:
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"


def judge(samples_a: list[float], samples_b: list[float], alpha: float = ALPHA,
          rel: float = REL) -> tuple[bool, float, float, float, str]:
    """(significant, median_b - median_a, relative difference, p, note) for one cell ok in both
    runs, by `edge.stats.distinguishable` on the raw samples."""
    if not samples_a or not samples_b:
        return False, math.nan, math.nan, math.nan, "no raw samples in one run: not judged"
    delta = float(np.median(samples_b) - np.median(samples_a))
    significant, p, diff = distinguishable(samples_a, samples_b, alpha, rel)
    sign = "+" if delta >= 0 else "-"
    pct = "inf" if math.isinf(diff) else f"{diff:.1%}"
    figures = (f"median {sign}{_fmt_ms(abs(delta))} ({sign}{pct}), {_fmt_p(p)}, "
               f"n {len(samples_a)}/{len(samples_b)}")
    if significant:
        word = "slower" if delta > 0 else "faster"
        return True, delta, diff, p, f"{word} in B ({figures})"
    return False, delta, diff, p, f"within noise ({figures})"


def _unique(df: pd.DataFrame) -> pd.DataFrame:
    if "cell_id" not in df.columns:
        raise ValueError("compare needs a cell_id column (a tidy table from edge.report.table)")
    return df.drop_duplicates("cell_id", keep="first").set_index("cell_id", drop=False)


def compare(df_a: pd.DataFrame, df_b: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of either run (`COMPARE_COLUMNS`): cells of both runs first (in A's
    order), then those only in A, then those only in B. ``significant`` follows the module's
    rule; ``note`` explains it, or why the cell was not judged."""
    a, b = _unique(df_a), _unique(df_b)
    ids_both = [c for c in a.index if c in b.index]
    only_a = [c for c in a.index if c not in b.index]
    only_b = [c for c in b.index if c not in a.index]
    rows = []
    for cid, presence in ([(c, "both") for c in ids_both] + [(c, "only A") for c in only_a]
                          + [(c, "only B") for c in only_b]):
        ra = a.loc[cid] if presence != "only B" else None
        rb = b.loc[cid] if presence != "only A" else None
        base = ra if ra is not None else rb
        status_a = _value(ra, "status") if ra is not None else None
        status_b = _value(rb, "status") if rb is not None else None
        if ra is not None and "status" not in a.columns:
            status_a = "ok"
        if rb is not None and "status" not in b.columns:
            status_b = "ok"
        p50_a, p50_b = _num(_value(ra, "p50_ms")), _num(_value(rb, "p50_ms"))
        mean_a, mean_b = _num(_value(ra, "mean_ms")), _num(_value(rb, "mean_ms"))
        std_a, std_b = _num(_value(ra, "std_ms")), _num(_value(rb, "std_ms"))
        samples_a, samples_b = _samples(ra), _samples(rb)
        ratio = p50_b / p50_a if p50_a > 0 else math.nan  # NaN compares False
        significant, delta, diff, p = False, math.nan, math.nan, math.nan
        if presence == "only A":
            note = f"only in A ({status_a or 'unknown status'})"
        elif presence == "only B":
            note = f"only in B ({status_b or 'unknown status'})"
        elif status_a != "ok" or status_b != "ok":
            note = f"not comparable: {status_a or '?'} in A, {status_b or '?'} in B"
        else:
            significant, delta, diff, p, note = judge(samples_a, samples_b)
        row = {"cell_id": cid, "presence": presence, "status_a": status_a,
               "status_b": status_b, "p50_a": p50_a, "p50_b": p50_b, "ratio": ratio,
               "mean_a": mean_a, "mean_b": mean_b, "std_a": std_a, "std_b": std_b,
               "n_a": len(samples_a) if ra is not None else None,
               "n_b": len(samples_b) if rb is not None else None,
               "delta_ms": delta, "rel_diff": diff, "p_value": p,
               "significant": bool(significant), "note": note}
        for col in _CELL_COLUMNS:
            row[col] = _value(base, col)
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    out["significant"] = out["significant"].astype(bool)
    for col in ("threads", "n_a", "n_b"):
        out[col] = out[col].astype("Int64")
    for col in ("p50_a", "p50_b", "ratio", "mean_a", "mean_b", "std_a", "std_b", "delta_ms",
                "rel_diff", "p_value"):
        out[col] = out[col].astype("float64")
    return out


def format_compare(df: pd.DataFrame, title: str = "run A vs run B") -> Table:
    """`compare`'s result as a rich Table: significant slowdowns in red, speedups in green."""
    table = Table(title=escape(title))
    for col, justify in (("model", "left"), ("variant", "left"), ("runtime", "left"),
                         ("device", "left"), ("p50 A", "right"), ("p50 B", "right"),
                         ("B/A", "right"), ("", "center"), ("note", "left")):
        table.add_column(col, justify=justify, no_wrap=col != "note")
    for _, r in df.iterrows():
        ratio = r["ratio"]
        delta = r["delta_ms"]
        style = None
        mark = ""
        if bool(r["significant"]):
            slower = delta > 0
            style = "red" if slower else "green"
            mark = "slower" if slower else "faster"
        device = str(r["device"]) + (f" t{r['threads']}" if not pd.isna(r["threads"]) else "")
        table.add_row(
            escape(str(r["model"])), escape(str(r["variant"])), escape(str(r["runtime"])),
            escape(device), _cell_ms(r["p50_a"]), _cell_ms(r["p50_b"]),
            "-" if math.isnan(_num(ratio)) else f"{ratio:.2f}x", mark, escape(str(r["note"])),
            style=style)
    return table
