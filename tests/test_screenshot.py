"""The README's pictures (`nox -s screenshot`): the report's top at the fixed viewport, and its
filled "Best variant per device" card. A Playwright of its own: no other page is open."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.farm.runners.browser import resolve_browser

from .conftest import write_fixture_report

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def run_dir(tmp_path):
    try:
        resolve_browser()
    except EdgeError as exc:
        pytest.skip(str(exc))
    return write_fixture_report(tmp_path / "reports").parent


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_the_readme_pictures_are_the_top_and_the_phones_answer(run_dir, tmp_path):
    """`nox -s screenshot`: the top of the overview at the fixed viewport, and the filled "Best
    variant per device" card, at most one viewport high."""
    from edge.report.screenshot import VIEWPORT, phones_picture, screenshot

    out = screenshot(run_dir / "index.html", tmp_path / "report.png")
    assert _png_size(out) == (VIEWPORT["width"], VIEWPORT["height"])
    width, height = _png_size(phones_picture(out))
    assert 600 <= width <= VIEWPORT["width"] and 100 <= height <= VIEWPORT["height"]
    assert phones_picture(out).read_bytes() != out.read_bytes()
