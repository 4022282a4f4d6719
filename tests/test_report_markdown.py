"""report/report.md as GitHub-flavoured Markdown, parsed by a real Markdown library (markdown-it-py, with
GFM tables): every table has as many cells in each row as in its header, every image is a file of the report,
every internal link has its anchor, and no reference token is left unresolved.

    pytest tests/test_report_markdown.py
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.numbering import Numbering, md_escape

pytestmark = pytest.mark.slow

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py not installed (pip install -e '.[dev]')")

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
ID_ATTR = re.compile(r"""\bid=["']([^"']+)["']""")


def gfm():
    # CommonMark plus GFM tables and strikethrough; raw HTML allowed as on GitHub (the <a id> anchors)
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def walk(tokens):
    for t in tokens:
        yield t
        yield from walk(t.children or [])


def cells(line: str) -> int:
    """Cells of one pipe-table row as GFM counts them (leading and trailing pipes delimit, escaped pipes don't)."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(UNESCAPED_PIPE.split(inner))


def check_markdown(text: str, folder: Path) -> list[str]:
    """Every problem a GitHub reader would see, one line each."""
    problems = []
    tokens = gfm().parse(text)
    lines = text.splitlines()
    tables = [t for t in tokens if t.type == "table_open"]
    separators = [i for i, line in enumerate(lines) if re.match(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$", line)]
    if len(tables) != len(separators):
        problems.append(f"{len(separators)} table separator rows but {len(tables)} tables parsed")
    for t in tables:
        start, end = t.map
        head = cells(lines[start])
        for n in range(start, end):
            if n == start + 1:
                continue
            if cells(lines[n]) != head:
                problems.append(f"line {n + 1}: {cells(lines[n])} cells, header has {head}: {lines[n][:80]}")
    ids = set()
    for t in walk(tokens):
        if t.type in ("html_inline", "html_block"):
            ids.update(ID_ATTR.findall(t.content))
    for t in walk(tokens):
        if t.type == "image":
            src = t.attrGet("src")
            if not (folder / src).is_file():
                problems.append(f"image {src} is not a file of the report")
        if t.type == "link_open":
            href = t.attrGet("href") or ""
            if href.startswith("#") and href[1:] not in ids:
                problems.append(f"link {href} has no anchor")
    if "[[fig:" in text or "[[tab:" in text:
        problems.append("unresolved reference token")
    return problems


def test_report_markdown_renders_as_gfm(rendered):
    md = (rendered / "report.md").read_text()
    assert check_markdown(md, rendered) == []
    tokens = gfm().parse(md)
    assert sum(t.type == "table_open" for t in tokens) >= 10
    assert sum(t.type == "image" for t in walk(tokens)) >= 3 * 3
    # numbered captions and the links to them
    assert re.search(r"\*Figure 1\. ", md) and re.search(r"\*\*Table 1\. ", md)
    assert re.search(r"\[Figure \d+\]\(#fig-", md) and re.search(r"\[Table \d+\]\(#tab-", md)


def test_the_check_catches_broken_markdown(tmp_path):
    """Planted faults: a row with an extra cell, a missing image, a dangling link, a leftover token."""
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "ok.png").write_bytes(b"\x89PNG")
    good = ('<a id="tab-x"></a>\n\n| a | b |\n|---|---|\n| 1 | 2 \\| 3 |\n\n![ok](figures/ok.png)\n\n'
            "[Table 1](#tab-x)\n")
    assert check_markdown(good, tmp_path) == []
    bad = good.replace("| 1 | 2 \\| 3 |", "| 1 | 2 | 3 |").replace("ok.png)", "gone.png)") + "[x](#nowhere) [[fig:y]]\n"
    found = check_markdown(bad, tmp_path)
    assert any("3 cells, header has 2" in p for p in found)
    assert any("gone.png" in p for p in found)
    assert any("#nowhere" in p for p in found)
    assert any("token" in p for p in found)


def test_escaped_text_survives_gfm():
    """Captions and cells carry |, *, _, < and [ ]: escaped, they render as written, in one cell."""
    raw = "a | b *c* x_y <= 2 [k] `t`"
    numbers = Numbering()
    numbers.place("fig", "f")
    md = f"| h |\n|---|\n| {md_escape(raw)} |\n\n{numbers.markdown('see [[fig:f]]; ' + raw)}\n"
    html = gfm().render(md)
    assert "<td>a | b *c* x_y &lt;= 2 [k] `t`</td>" in html
    assert '<a href="#fig-f">Figure 1</a>' in html
