"""Data shipped with the package: the device catalog, the reference points, the default device
matrix and the harness page with its pinned TF.js runtime description (`web/`).

Read through `importlib.resources`, so an installed package (not only a source checkout) finds
them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """The file system path of a shipped data file (the package is installed unzipped)."""
    return Path(str(files("edge").joinpath("data", *parts)))
