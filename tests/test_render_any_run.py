"""Every valid run renders: any subset of the three parts, any valid settings (drawn by Hypothesis at tiny sizes),
and a fixed set of edge runs (one seed, one init, one part alone, nothing outside its band, everything diverged).

    pytest tests/test_render_any_run.py -q

Each case runs the experiments in-process at tiny sizes on the CPU (a few seconds each), then renders with
lab.report.render_report and checks what a reader would hit: both documents written, every link to a figure,
table or anchor resolves, no reference token left, no "Figure ?", no interval printed as one number, and the
words name only what ran (helpers and the stand-in gate record: tests/tiny_runs.py).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from tiny_runs import check_rendered, run_part, stand_in_gate

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (pip install -e '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def out(tmp_path) -> Path:
    stand_in_gate(tmp_path)
    return tmp_path


# --- edge runs ---------------------------------------------------------------------------------------------------

EDGES = {
    # the case: Part 3 alone, N(0, 0.01) init, no finding outside its band -> no gate_outside table
    "dropout_alone_nothing_outside": {"dropout": {"sigma": "0.01"}},
    "shallow_alone": {"shallow_init": {}},
    "deep_alone_one_init": {"deep_init": {"inits": "he"}},
    "one_seed_everywhere": {"shallow_init": {"n_seeds": "1"}, "deep_init": {"n_nets": "1"},
                            "dropout": {"n_train_seeds": "1", "n_mask_seeds": "1"}},
    "dropout_p0_kmax1_no_reference": {"dropout": {"p_input": "0", "p_hidden": "0", "k_max": "1",
                                                  "k_max_reference": "0"}},
    "everything_diverged": {"shallow_init": {"lr": "1e16", "scale_factors": "1000"},
                            "deep_init": {"inits": "normal:1e30"},
                            "dropout": {"sigma": "1e30", "n_train_seeds": "1"}},
}


@pytest.mark.parametrize("case", list(EDGES))
def test_edge_runs_render(out, case):
    for name, sets in EDGES[case].items():
        run_part(out, name, sets)
    html, _ = check_rendered(out)
    for name in ("shallow_init", "deep_init", "dropout"):
        if name not in EDGES[case]:
            assert f"run python -m lab run {name}" in html  # a part that did not run says so
    if case == "everything_diverged":  # the answers say so instead of claiming anything
        rows = dict(re.findall(r'<tr id="answer-([a-z0-9_]+)"[^>]*>(.*?)</tr>', html, re.S))
        for qid in ("p2_stats", "p3_dropout", "p3_regulariser"):
            assert "diverged" in rows[qid], (qid, rows[qid][:300])
        for qid in ("p3_dropout", "p3_regulariser"):
            assert "lowers" not in rows[qid] and "raises" not in rows[qid] and "regularises" not in rows[qid]


# --- drawn runs --------------------------------------------------------------------------------------------------

INITS = ["normal:1", "glorot", "he", "normal:0.01", "he_uniform"]

shallow_sets = st.fixed_dictionaries({}, optional={
    "n_seeds": st.sampled_from(["1", "2"]),
    "n_sigmas": st.sampled_from(["3", "4"]),
    "steps": st.sampled_from(["10", "30"]),
    "early_step": st.just("5"),
    "scale_factors": st.lists(st.sampled_from(["0.01", "1", "100"]), min_size=1, max_size=3, unique=True).map(",".join),
    "sigma_min": st.sampled_from(["0.001", "0.1"]),
    "hidden": st.sampled_from(["6,3", "4", "3,3,3"]),
})
deep_sets = st.fixed_dictionaries({}, optional={
    "inits": st.lists(st.sampled_from(INITS), min_size=1, max_size=3, unique=True).map(",".join),
    "depth": st.sampled_from(["2", "4"]),
    "n_nets": st.sampled_from(["1", "2"]),
})
dropout_sets = st.fixed_dictionaries({}, optional={
    "n_train_seeds": st.sampled_from(["1", "2", "3"]),
    "p_input": st.sampled_from(["0", "0.2"]),
    "p_hidden": st.sampled_from(["0", "0.5"]),
    "k_max": st.sampled_from(["1", "2", "12"]),
    "k_max_reference": st.sampled_from(["0", "1", "3"]),
    "n_mask_seeds": st.sampled_from(["1", "2"]),
    "sigma": st.sampled_from(["0.01", "0.1", "1"]),
    "seed": st.sampled_from(["0", "7"]),
})
runs = st.fixed_dictionaries({}, optional={"shallow_init": shallow_sets, "deep_init": deep_sets,
                                           "dropout": dropout_sets}).filter(bool)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(run=runs)
def test_any_valid_run_renders(run):
    folder = Path(tempfile.mkdtemp(prefix="lab-any-run-"))
    try:
        stand_in_gate(folder)
        for name, sets in run.items():
            run_part(folder, name, sets)
        check_rendered(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- the words follow the run ------------------------------------------------------------------------------------

LABELS = {"normal:1": "N(0, 1)", "glorot": "Glorot", "he": "He"}


def _part(html: str, part: int) -> str:
    """Part ``part`` of the HTML, images left out (their base64 data may hold any short string)."""
    start = html.index(f'id="part{part}"')
    return re.sub(r'src="data:[^"]*"', 'src=""', html[start:html.index("<h2", start + 10)])


def test_part2_names_exactly_the_inits_that_ran(out):
    run_part(out, "deep_init", {"inits": "he,glorot", "depth": "5"})
    html, md = check_rendered(out)
    for text in (_part(html, 2), md[md.index("## Part 2"):md.index("## Appendix A")].replace("\\_", "_")):
        assert "He (kaiming_normal_)" in text and "Glorot (xavier_normal_)" in text
        assert "(5 x 8 ReLU layers)" in text and "20 x 100" not in text
        assert "N(0, 1)" not in text and "N(0,&nbsp;1)" not in text, "an init that did not run is named"
        assert "layers 1, 2 and 5" in text and "layers 1, 10 and 20" not in text
    row = html[html.index('id="answer-p2_stats"'):]
    row = row[:row.index("</tr>")]
    assert "over 5 layers under He (kaiming_normal_) and Glorot (xavier_normal_)" in row and "N(0, 1)" not in row
    discussion = html[html.index('id="discussion-part2"'):]
    discussion = discussion[:discussion.index("</ul>")]
    assert "N(0, 1)" not in discussion and "He" in discussion and "Glorot" in discussion


def test_part3_question_names_the_rates_that_ran(out):
    run_part(out, "dropout", {"p_input": "0.1", "p_hidden": "0.3", "n_train_seeds": "1"})
    html, md = check_rendered(out)
    row = html[html.index('id="answer-p3_dropout"'):]
    row = row[:row.index("</tr>")]
    assert "Dropout (30 % after each hidden layer, 10 % on the input)" in row and "50 %" not in row
    assert "30 % after each hidden layer, 10 % on the input" in md


def test_part1_homogeneity_follows_the_net_that_ran(out):
    """Inputs x c equal weights x c^(1/L) for L weight matrices: 1/3 only for the lab's 2-6-3-2 net."""
    run_part(out, "shallow_init", {"hidden": "4", "scale_factors": "0.01,1,100"})
    html, _ = check_rendered(out)
    part = _part(html, 1)
    assert "2-4-2 on two rings" in part and "2-6-3-2" not in part
    assert "x c^(1/2)" in part and "1/3" not in part
