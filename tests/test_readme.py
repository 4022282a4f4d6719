"""The README documents only what exists: its make targets, CLI commands and flags are checked here."""

import re
import shlex

import pytest

from lab import PROJECT_ROOT
from lab.__main__ import build_parser

README = (PROJECT_ROOT / "README.md").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-zA-Z_-]+):", MAKEFILE, flags=re.M))
MAKE_CALLS = sorted(set(re.findall(r"`make ([a-z_-]+)", README)))
LAB_LINES = sorted({m.strip() for m in re.findall(r"python -m lab ([^#`\n]*)", README)})


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make report" in first_block and "make test" in first_block


@pytest.mark.parametrize("target", MAKE_CALLS)
def test_every_make_target_in_the_readme_exists(target):
    assert target in TARGETS


@pytest.mark.parametrize("line", LAB_LINES)
def test_every_lab_command_in_the_readme_parses(line):
    argv = shlex.split(line)
    if argv in (["--help"], []):
        return
    build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown command or flag


def test_every_documented_flag_exists():
    flags = {f for f in re.findall(r"`(--[a-z-]+)", README) if not f.startswith("--benchmark")}  # pytest-benchmark's
    parser_text = " ".join(
        action.format_usage() if hasattr(action, "format_usage") else ""
        for action in build_parser()._subparsers._group_actions[0].choices.values()
    )
    missing = [f for f in flags if f not in parser_text and f not in MAKEFILE]
    assert not missing, missing
