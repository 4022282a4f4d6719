"""One exception type for every user-facing failure: the CLI prints its message on one line, exits 2.

    raise LabError("unknown experiment 'foo' (choose from: deep_init, dropout, shallow_init)")
"""


class LabError(Exception):
    """A problem the user can fix (bad input, missing data, a stale file); never a bug in the lab."""
