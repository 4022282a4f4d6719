"""The gate as pytest: collects every CheckResult and, with --checks-json, records a complete gate run.

    pytest checks --checks-json report/data/checks.json

A record is written only when every entry of the current gate ran to a result in an uninterrupted
session: `pytest checks -k ...`, `-x` stopping early, Ctrl-C, SIGTERM or a crash leave the previous record
as it was (and `lab report` refuses a record that lacks a check of the current gate). With --checks-json
the session holds the report folder's lock (lab.outdir), like `python -m lab check`.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest

from lab.context import resolve_device
from lab.errors import LabError

_COLLECTED: list = []
_START = time.perf_counter()
_HELD = contextlib.ExitStack()


def _report_folder(checks_json: str) -> Path:
    """OUT for OUT/data/checks.json (the layout lab report reads); else the file's own folder."""
    path = Path(checks_json)
    return path.parent.parent if path.parent.name == "data" else path.parent


_SIGNALLED: list[int] = []  # Ctrl-C / SIGTERM received while recording: the session stops after the current check


def _stop_after_this_check(signum, frame):
    """The first Ctrl-C or SIGTERM stops the gate between two checks, whatever pytest is doing when it lands (running
    a check, rendering a failure's traceback): exit code INTERRUPTED every time, never a record. A second one
    interrupts at once."""
    if _SIGNALLED:
        raise KeyboardInterrupt
    _SIGNALLED.append(signum)


_SESSION: list = []


def pytest_sessionstart(session):
    _SESSION.append(session)


def pytest_runtest_logfinish(nodeid, location):
    if _SIGNALLED and _SESSION:
        _SESSION[0].shouldstop = "interrupted"  # pytest stops before the next check, exit code INTERRUPTED


def pytest_configure(config):
    path = config.getoption("--checks-json")
    if not path:
        return
    from lab.outdir import clean_leftovers, lock_out, refuse_links, refuse_non_file

    signal.signal(signal.SIGTERM, _stop_after_this_check)
    signal.signal(signal.SIGINT, _stop_after_this_check)
    out = _report_folder(path)
    try:
        refuse_non_file(Path(path), "the gate record")
        if Path(path).parent.name == "data":
            refuse_links(out, ("data",))  # the record goes into OUT/data, never into a folder a link points at
        _HELD.enter_context(lock_out(out))
        clean_leftovers(out)
    except (LabError, OSError) as exc:
        _HELD.close()
        message = str(exc) if isinstance(exc, LabError) else f"{exc.filename}: {exc.strerror or exc}"
        raise pytest.UsageError(f"error: {message}") from None


def pytest_unconfigure(config):
    _HELD.close()


@pytest.fixture(scope="session")
def device(request):
    try:
        return resolve_device(request.config.getoption("--lab-device"))
    except LabError as exc:
        pytest.exit(f"error: {exc}", returncode=2)


@pytest.fixture(scope="session")
def gate_session(device):
    """One lab.gate.Session for the whole pytest run: each experiment's data is loaded once."""
    from lab.gate import Session

    return Session(device)


@pytest.fixture(scope="session")
def record():
    """Tests hand their (entry, CheckResult) here so the whole checklist can be written once at the end."""
    return _COLLECTED.append


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--checks-json")
    if not path:
        return
    from lab.gate import gate_names, write_record

    ran = {name for name, _ in _COLLECTED}
    names = gate_names()
    if _SIGNALLED:
        session.exitstatus = exitstatus = pytest.ExitCode.INTERRUPTED
    complete = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and set(names) <= ran
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not complete:
        msg = (f"gate record NOT written to {path}: {len(ran & set(names))} of {len(names)} checks ran "
               f"({'interrupted' if exitstatus == pytest.ExitCode.INTERRUPTED else 'partial run'}); the previous "
               "record, if any, is left as it was")
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(msg, yellow=True)
        return
    by_name = dict(_COLLECTED)
    device = resolve_device(session.config.getoption("--lab-device"))
    try:
        write_record(Path(path), names, [by_name[n] for n in names], device, time.perf_counter() - _START)
    except (OSError, LabError) as exc:  # a full disk, a read-only folder: one line and exit 2, like `lab check`
        from lab.__main__ import os_error_line, printable

        message = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(f"error: gate record NOT written: {printable(message)}", red=True)
        session.exitstatus = 2
        return
    if reporter:
        n_pass = sum(by_name[n].passed for n in names)
        reporter.ensure_newline()
        reporter.write_line(f"gate record: {n_pass} of {len(names)} checks passed -> {path}")
