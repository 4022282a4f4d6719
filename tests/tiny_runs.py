"""Run parts at tiny sizes in-process and render, checking what every valid report must satisfy; shared by the
render tests (tests/test_render_any_run.py, tests/test_off_protocol.py).

    stand_in_gate(out); run_part(out, "dropout", {"sigma": "0.01"}); html, md = check_rendered(out)

The gate record is a stand-in (every entry of the current gate, passed): the gate itself is tested in checks/ and
tests/test_gate_mutations.py; here it only has to let the report render.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from lab.__main__ import main
from lab.gate import gate_names, write_record
from lab.report import render_report
from lab.results import CheckResult

# Tiny sizes on top of the quick profile: each part runs in a few seconds on a busy 2-core CPU.
TINY = {
    "shallow_init": {"n_train": "20", "n_val": "60", "n_seeds": "1", "n_sigmas": "3", "steps": "30", "early_step": "10",
                     "n_eval": "3", "curve_points": "5", "grid_size": "4"},
    "deep_init": {"depth": "3", "width": "8", "n_samples": "40", "n_train": "10", "n_nets": "1"},
    "dropout": {"n_train": "100", "n_val": "50", "hidden": "16", "epochs": "1", "n_train_seeds": "2", "k_max": "3",
                "n_mask_seeds": "1", "k_max_reference": "2", "n_mc": "20", "batch_size": "50"},
}


def stand_in_gate(out: Path) -> None:
    (out / "data").mkdir(parents=True, exist_ok=True)
    names = gate_names()
    write_record(out / "data" / "checks.json", names,
                 [CheckResult(n, True, "ok", "ok", "stand-in record: this test renders") for n in names],
                 torch.device("cpu"), 0.0)


def run_part(out: Path, name: str, sets: dict[str, str], profile: str = "quick", tiny: bool = True) -> None:
    args = ["run", name, "--profile", profile, "--device", "cpu", "--out", str(out), "--quiet"]
    for key, value in {**(TINY[name] if tiny else {}), **sets}.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0, args


ID = re.compile(r"""\bid=["']([^"']+)["']""")
HTML_LINK = re.compile(r'href="#([^"]+)"')
MD_LINK = re.compile(r"(?<!\\)\]\(#([^)\s]+)\)")
# a 95 % interval shown as one number: "interval 1.50 to 1.50" in a sentence, "[+1.50, +1.50]: effect" in a table
# (a min-max range over seeds, "2.298 [2.298, 2.298]", may be one number: the seeds agreed to the digits shown)
POINT_INTERVAL = re.compile(r"interval ([+-]?\d[\d.,]*) to \1(?![\d])|\\?\[([+-]\d[\d.]*), \2\\?\]: (effect|cannot)")


def check_rendered(out: Path) -> tuple[str, str]:
    """Render and return (html, markdown) after the checks every valid run must pass."""
    paths = render_report(out)
    html, md = paths["html"].read_text(), paths["markdown"].read_text()
    for text, links in ((html, HTML_LINK), (md, MD_LINK)):
        ids = set(ID.findall(text))
        dangling = sorted(set(links.findall(text)) - ids)
        assert not dangling, f"links without a target: {dangling}"
        assert "[[fig:" not in text and "[[tab:" not in text
        assert "Figure ?" not in text and "Table ?" not in text
        bad = POINT_INTERVAL.search(text)
        assert bad is None, f"an interval shown as one number: {text[bad.start() - 80:bad.end() + 20]}"
    assert "<h2 id=\"answers\">" in html and "## Answers at a glance" in md
    for line in paths["summary"]:
        assert "[[" not in line
    return html, md
