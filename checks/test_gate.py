"""Karpathy-recipe gate on the lab's default configurations: thin asserts over lab.recipe via lab.gate.

    pytest checks            # make report runs this first and renders nothing if one fails
"""

import pytest

from lab.gate import GATE, run_check


@pytest.mark.parametrize("name", list(GATE))
def test_gate(name, device, record):
    result = run_check(name, device)
    record((name, result))
    assert result.passed, f"{result.name}: measured {result.measured}, expected {result.expected} -- {result.detail}"
