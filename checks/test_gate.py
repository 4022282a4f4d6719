"""Karpathy-recipe gate on each experiment's own code (lab.gate via its gate_hooks): thin asserts.

    pytest checks            # make report runs this first and renders nothing if one fails
"""

import pytest

from lab.gate import gate_names, run_check


@pytest.mark.parametrize("name", gate_names())
def test_gate(name, device, record, gate_session):
    result = run_check(name, device, gate_session)
    record((name, result))
    assert result.passed, f"{result.name}: measured {result.measured}, expected {result.expected} -- {result.detail}"
