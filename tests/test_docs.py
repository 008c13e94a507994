"""The documentation's relative links and images name files (and headings) that exist, and the
README links every page under docs/. Fast: reads markdown, nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: A markdown link or image: [text](target) / ![alt](target "title"). Code spans and fenced
#: blocks are removed first, so examples in them are not links.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (hyphens and
    underscores kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings (GitHub numbers repeats: name, name-1, name-2...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]  # http:, https:, mailto: ...


def broken_links(path: Path) -> list[str]:
    """Each relative link of `path` whose file, or heading, does not exist."""
    broken = []
    for target in relative_links(path):
        name, _, anchor = target.partition("#")
        linked = (path.parent / unquote(name)).resolve() if name else path
        if not linked.exists():
            shown = linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked
            broken.append(f"{target}: no file {shown}")
        elif anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme():
    readme = ROOT / "README.md"
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(readme)}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert missing == []


def test_readme_fits_on_a_screen_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    head = text.split("\n## ", 1)[0]
    assert "pip install nox && nox -s device_matrix" in head and "nox -s tests" in head


def test_the_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    (tmp_path / "docs" / "b.md").write_text("# B\n\n## The `x` step, again\n")
    page.write_text(
        "# A\n\n## Here\n\n[ok](b.md) [ok](b.md#the-x-step-again) [ok](#here) [ok](../docs/b.md)\n"
        "[web](https://example.com/nothing) `[code](missing.md)`\n\n```\n[fence](gone.md)\n```\n"
        "[gone](gone.md) ![img](img/none.png) [bad anchor](b.md#nope) [self](#nowhere)\n")
    broken = broken_links(page)
    assert [b.split(":")[0] for b in broken] == ["gone.md", "img/none.png", "b.md#nope",
                                                "#nowhere"]


def test_slug_follows_github():
    assert slug("What `nox -s device_matrix` does") == "what-nox--s-device_matrix-does"
    assert slug("Scale out: shards and `edge merge`") == "scale-out-shards-and-edge-merge"
    assert slug("What an emulated phone is, and what it is worth") == \
        "what-an-emulated-phone-is-and-what-it-is-worth"
