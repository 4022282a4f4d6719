"""A report off the lab's protocol says so: on its first screen, in every answer and section of an affected part,
with what differs (lab.sections.protocol); a report mixing profiles says which part ran which.

    pytest tests/test_off_protocol.py -q
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from lab.config import config_to_dict, make_config
from lab.sections.protocol import deviations, part_status
from tiny_runs import TINY, check_rendered, run_part, stand_in_gate

pytestmark = pytest.mark.slow


def test_the_full_profile_is_the_protocol_and_any_other_setting_is_not():
    for name in ("shallow_init", "deep_init", "dropout"):
        assert deviations(name, config_to_dict(make_config(name, "full"))) == []
        # another seed is a replication of the protocol, --final an extra evaluation: neither leaves it
        assert deviations(name, config_to_dict(make_config(name, "full", {"seed": "7"}))) == []
        assert deviations(name, config_to_dict(make_config(name, "quick")))  # quick shortens every part
    assert [d.text for d in deviations("dropout", config_to_dict(make_config("dropout", "full", {"epochs": "3"})))] \
        == ["epochs 3 instead of 80"]
    lengthened = deviations("dropout", config_to_dict(make_config("dropout", "full", {"n_train_seeds": "5"})))
    assert [d.text for d in lengthened] == ["training seeds 5 instead of 3"]  # longer is still not the protocol
    inits = deviations("deep_init", config_to_dict(make_config("deep_init", "full", {"inits": "he,glorot"})))
    assert [d.text for d in inits] == ["inits he, glorot instead of normal:1, glorot, he"]
    status = part_status("dropout", 3, "quick", config_to_dict(make_config("dropout", "quick")))
    assert status["off"] and "epochs 3 instead of 80" in status["full"] and "epochs" in status["short"]


def _render(out) -> tuple[str, str]:
    html, md = check_rendered(out)
    return unescape(html), md  # apostrophes are escaped where they come from data, not where a template wrote them


def _first_screen(html: str) -> str:
    return html[html.index("<body>"):html.index('id="answers"')]


def _rows(html: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r'<tr id="answer-([a-z0-9_]+)"[^>]*>(.*?)</tr>', html, re.S)}


def test_a_quick_run_says_so_on_its_first_screen_in_each_answer_and_section(tmp_path):
    stand_in_gate(tmp_path)
    run_part(tmp_path, "dropout", {"n_train_seeds": "2"})
    html, md = _render(tmp_path)
    top = _first_screen(html)
    assert 'id="off-protocol"' in top and "Not the lab's protocol" in top
    # the first screen names what differs (the values where there are few: below); the part's note gives values
    assert "Part 3 (profile quick: " in top and "epochs" in top and "training seeds" in top
    rows = _rows(html)
    for qid in ("p3_dropout", "p3_regulariser", "p3_mc_small", "p3_mc_large"):
        assert "Off the lab's protocol" in rows[qid], qid
        assert "epochs" in rows[qid] and "training seeds" in rows[qid]
    assert "Off the lab" not in rows["p2_stats"]  # a part that did not run is not marked (it says it is missing)
    part3 = html[html.index('id="part3"'):html.index('id="appendix-a"')]
    assert "this part ran profile quick with" in part3 and "epochs 1 instead of 80" in part3
    discussion = html[html.index('id="discussion-part3"'):]
    assert "Off the lab's protocol (profile quick: " in discussion[:discussion.index("</ul>")]
    md_top = md[:md.index("## Answers at a glance")]
    assert "**Not the lab's protocol: do not submit these conclusions.**" in md_top and "epochs" in md_top
    assert "this part ran profile quick with" in md and "epochs 1 instead of 80" in md
    assert md.count("[Off the lab's protocol](#off-protocol)") == 4


def test_one_set_on_the_full_profile_is_named_and_mixed_profiles_say_which_part_ran_which(tmp_path):
    stand_in_gate(tmp_path)
    run_part(tmp_path, "deep_init", {"depth": "2"}, profile="full", tiny=False)  # the cheapest one-setting cut
    run_part(tmp_path, "dropout", {"n_train_seeds": "1"})
    html, md = _render(tmp_path)
    top = _first_screen(html)
    assert "Part 2 (profile full): hidden layers 2 instead of 20</li>" in top
    assert "Part 2 ran profile <b>full</b>, Part 3 ran profile <b>quick</b>." in top
    assert "Off the lab's protocol</a> (hidden layers 2 instead of 20):" in _rows(html)["p2_stats"]
    assert "Part 2 ran profile **full**, Part 3 ran profile **quick**." in md


def test_a_run_of_the_protocol_carries_no_banner(tmp_path, monkeypatch):
    """The lab's own protocol takes minutes on a busy CPU: here the protocol is, for this test, the tiny run's own
    settings under another seed, so the report must find nothing to mark."""
    import lab.sections.protocol as protocol

    stand_in_gate(tmp_path)
    run_part(tmp_path, "deep_init", {"seed": "3"})
    tiny = config_to_dict(make_config("deep_init", "quick", {k: v for k, v in TINY["deep_init"].items()}))
    real = protocol.protocol_config
    monkeypatch.setattr(protocol, "protocol_config", lambda name: tiny if name == "deep_init" else real(name))
    html, md = _render(tmp_path)
    body = html[html.index("<body>"):]
    assert 'id="off-protocol"' not in body and "Off the lab" not in body and "Not the lab" not in body
    assert "Not the lab's protocol" not in md and "(#off-protocol)" not in md
    monkeypatch.setattr(protocol, "protocol_config", real)  # the real protocol: the same run is marked
    html, md = _render(tmp_path)
    assert 'id="off-protocol"' in html and "input points 40 instead of 10,000" in html
