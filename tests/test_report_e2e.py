"""End to end: gate, quick run of every part, render into a temporary folder, and inspect what came out.

    pytest tests/test_report_e2e.py
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import jinja2
import pytest

from lab.__main__ import main
from lab.experiments import EXPERIMENTS
from lab.report import render_report, template_env

pytestmark = pytest.mark.slow


class Structure(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []
        self.headings: list[str] = []
        self.classes: list[str] = []
        self._in_h = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        if tag in ("h1", "h2"):
            self._in_h = True
            self.headings.append("")
        if "class" in attrs:
            self.classes.append(attrs["class"])

    def handle_endtag(self, tag):
        if tag in ("h1", "h2"):
            self._in_h = False

    def handle_data(self, data):
        if self._in_h:
            self.headings[-1] += data


# `rendered` (gate, quick run of every part, render; once per session) is in tests/conftest.py.


def test_html_is_self_contained_with_decodable_images(rendered):
    html = (rendered / "index.html").read_text()
    parser = Structure()
    parser.feed(html)
    assert len(parser.imgs) >= 3 * len(EXPERIMENTS)
    for src in parser.imgs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert "src=\"figures/" not in html  # nothing external: the file opens offline on its own


def test_every_lab_section_is_present_and_filled(rendered):
    parser = Structure()
    parser.feed((rendered / "index.html").read_text())
    heads = " | ".join(parser.headings)
    for expected in ("Answers at a glance", "Sanity checks", "Part 1", "Part 2", "Part 3", "Discussion",
                     "Reproducibility"):
        assert expected in heads
    assert "missing" not in parser.classes  # every part ran
    assert parser.classes.count("discussion-list") == len(EXPERIMENTS)  # each part's discussion, in its appendix


def test_markdown_references_existing_figures(rendered):
    md = (rendered / "report.md").read_text()
    refs = [line.split("](", 1)[1].split(")", 1)[0] for line in md.splitlines() if line.startswith("![")]
    assert refs and all((rendered / r).is_file() for r in refs)
    assert "## Part 2" in md
    # every pipe table has its separator row right under its header (a template whitespace slip breaks this)
    lines = md.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            assert lines[i + 1].startswith("|---"), f"table without separator at line {i + 1}: {line[:60]}"


def test_results_json_carry_provenance(rendered):
    for name in EXPERIMENTS:
        raw = json.loads((rendered / "data" / f"{name}.json").read_text())
        prov = raw["provenance"]
        for key in ("git_commit", "git_dirty", "torch", "device", "seed", "profile", "wall_time_s"):
            assert key in prov
        assert prov["profile"] == "quick" and prov["device"] == "cpu"
    checks = json.loads((rendered / "data" / "checks.json").read_text())["checks"]
    assert checks and all(c["passed"] for c in checks)


def test_answers_open_the_report_and_the_gate_is_one_line_before_the_parts(rendered):
    html = (rendered / "index.html").read_text()
    checks = json.loads((rendered / "data" / "checks.json").read_text())["checks"]
    answers, gate = html.index("Answers at a glance"), html.index('id="gate"')
    part1, appendix = html.index('id="part1"'), html.index('id="appendix-a"')
    assert answers < gate < part1 < appendix
    line = html[gate:html.index("</p>", gate)]
    assert f"{len(checks)} of {len(checks)} gate checks passed" in line and "Appendix A" in line
    # every question of the lab has its row, each answered from this run (the quick run has every part)
    from lab.answers import QUESTIONS

    for qid in QUESTIONS:
        assert f'id="answer-{qid}"' in html, qid
    assert "[[fig:" not in html and "[[tab:" not in html  # every reference token became a link


def test_a_template_typo_fails_loudly():
    env = template_env()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ sec.figurez }}").render(sec={"figures": []})


def test_failed_gate_keeps_the_previous_report(rendered, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(rendered, out)
    before = (out / "index.html").read_bytes()
    checks_file = out / "data" / "checks.json"
    raw = json.loads(checks_file.read_text())
    raw["checks"][0]["passed"] = False
    checks_file.write_text(json.dumps(raw))
    assert main(["report", "--out", str(out)]) == 2
    assert (out / "index.html").read_bytes() == before
    assert not list(out.glob(".staging-*"))


def test_rerender_without_retraining(rendered):
    data_before = {p.name: p.read_bytes() for p in (rendered / "data").glob("*.json")}
    render_report(rendered)
    assert {p.name: p.read_bytes() for p in (rendered / "data").glob("*.json")} == data_before
