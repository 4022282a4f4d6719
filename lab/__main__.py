"""Command line: python -m lab {list,run,check,audit,report,pdf} [--profile quick|full] [--device] [--seed] [--out].

    python -m lab run deep_init --profile quick && python -m lab report

Every user error (unknown experiment, bad profile, bad override, missing data, an OS error such as a full
disk or a read-only --out...) is one line on stderr and exit code 2; a failed gate is exit code 1; Ctrl-C /
SIGTERM print one line and exit 130 / 143; a bug in the lab is one line naming a log file with the
traceback, exit code 3 (LAB_DEBUG=1 raises it instead). Nothing already written is destroyed.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):  # pragma: no cover - exercised through subprocesses
    """Until main() takes over (imports take seconds), a signal ends the process at once: nothing is written yet."""
    sys.stderr.write("interrupted while starting: nothing was written\n")
    os._exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    signal.signal(signal.SIGTERM, _interrupted_while_starting)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import errno  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from lab import DEFAULT_OUT  # noqa: E402
from lab.config import CONFIG_CLASSES, PROFILES, config_to_dict, make_config, parse_overrides  # noqa: E402
from lab.context import DEVICE_CHOICES, RunContext, resolve_device  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.experiments import EXPERIMENTS, expand_names  # noqa: E402
from lab.outdir import clean_leftovers, lock_out, make_temp_file, refuse_links, refuse_non_file  # noqa: E402

EXIT_GATE_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3  # a bug in the lab, not something the user did
DEBUG_ENV = "LAB_DEBUG"  # LAB_DEBUG=1: let unexpected exceptions raise with their traceback


def _common(p: argparse.ArgumentParser, profile: bool = True) -> None:
    if profile:
        p.add_argument("--profile", default="full", help="quick (smoke size, ~1 min) or full (the lab's protocol) [default: full]")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}; auto = cuda when present [default: auto]")
    p.add_argument("--out", type=_out_folder, default=DEFAULT_OUT, help=f"report folder; results go to OUT/data [default: {DEFAULT_OUT}]")
    p.add_argument("--quiet", action="store_true", help="no progress bars [default: bars on a terminal]")


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line like every other user error (exit 2), pointing at --help for the options."""

    def error(self, message: str):
        raise LabError(f"{message} (see {self.prog} --help)")


def _out_folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got an empty path")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,check,audit,report,pdf}")

    lst = sub.add_parser("list", help="list experiments, their settings (with the profile's values) and what they cost")
    lst.add_argument("--profile", default="full", help="show the values of this profile [default: full]")
    _rate_option(lst)

    run = sub.add_parser("run", help="run experiments (cached: only stale ones rerun)")
    run.add_argument("experiments", nargs="+", help=f"names: {', '.join(EXPERIMENTS)}, or all")
    _common(run)
    run.add_argument("--seed", type=int, default=None, help="override every experiment's seed [default: config seed, 0]")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting, e.g. epochs=5 or dropout.epochs=5 (repeatable)")
    run.add_argument("--force", action="store_true", help="rerun even if a fresh cached result exists")
    run.add_argument("--final", action="store_true",
                     help="Part 3 only: evaluate once on MNIST's test split, reported in its own section [default: off]")
    _rate_option(run)

    check = sub.add_parser("check", help="run the Karpathy-recipe gate and record it for the report")
    _common(check, profile=False)

    audit = sub.add_parser("audit", help="recompute the results' numbers with independent code (checks/audit); "
                                        "record OUT/data/audit.json")
    _common(audit, profile=False)

    report = sub.add_parser("report", help="render OUT/index.html and OUT/report.md from saved results")
    report.add_argument("--out", type=_out_folder, default=DEFAULT_OUT, help=f"report folder [default: {DEFAULT_OUT}]")

    pdf = sub.add_parser("pdf", help="print the rendered OUT/index.html to OUT/report.pdf (headless Chromium)")
    pdf.add_argument("--out", type=_out_folder, default=DEFAULT_OUT, help=f"report folder [default: {DEFAULT_OUT}]")
    return parser


def _rate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=_gflops, default=None, metavar="GFLOPS",
                   help="matmul rate for the time estimate, GFLOP/s [default: measured in about a second]")


def _gflops(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of GFLOP/s, got {text!r}") from None
    if not (0 < value < 1e9):  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of GFLOP/s, got {text}")
    return value


def _rate(args, device):
    """The rates the estimates use (lab.cost.Rates): --rate for the matmul, or both kernels timed now (a second)."""
    from lab.cost import Rates, recent_rates

    if args.rate is not None:
        return Rates(args.rate), "(--rate)"
    return recent_rates(device, 1.0), "measured now"


def _part_label(name: str) -> str:
    return f"Part {EXPERIMENTS[name][0]}"


def split_overrides(pairs: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """'key=v' applies to every selected experiment, 'exp.key=v' to one; unknown keys are errors."""
    per: dict[str, dict[str, str]] = {n: {} for n in names}
    for key, value in parse_overrides(pairs).items():
        exp, dot, field = key.partition(".")
        if dot:
            if exp not in per:
                raise LabError(f"override '{key}': experiment '{exp}' is not among those being run ({', '.join(names)})")
            per[exp][field] = value
        else:
            for n in names:
                per[n][key] = value
    return per


def cmd_list(args) -> int:
    if args.profile not in PROFILES:
        raise LabError(f"unknown profile '{args.profile}' (choose from: {', '.join(PROFILES)})")
    from lab import cost

    rate, how = _rate(args, resolve_device("auto"))
    cfgs = {}
    for name, (part, title) in EXPERIMENTS.items():
        cfgs[name] = make_config(name, args.profile)
        print(f"{name}  (part {part}: {title})")
        doc = CONFIG_CLASSES[name].__doc__.strip().splitlines()[0]
        print(f"    {doc}")
        for key, value in config_to_dict(cfgs[name]).items():
            print(f"    {key} = {value}")
        plan = cost.estimate(name, cfgs[name])
        print(f"    cost: {cost.estimate_line(_part_label(name), plan, rate, how)}")
        for phase in plan.phases:
            print(f"      {phase.name}: {cost.fmt_flops(phase.flops)}, ~{cost.fmt_duration(phase.seconds(rate))} ({phase.what})")
    plans = [cost.estimate(name, cfg) for name, cfg in cfgs.items()]
    audit = cost.audit_plan(cfgs)
    print(cost.estimate_line(f"all parts ({args.profile})", cost.Plan("all", [p for pl in plans for p in pl.phases]), rate,
                             how) + f"; the audit after them ~{cost.fmt_flops(audit.flops)}, about "
          f"{cost.fmt_duration(audit.seconds(rate))}")
    return 0


def cmd_run(args) -> int:
    from lab.runner import run_experiment

    names = expand_names(args.experiments)
    per = split_overrides(args.overrides, names)
    if args.final:
        if "dropout" not in names:
            raise LabError("--final evaluates Part 3 on MNIST's test split: run it with the dropout experiment")
        per["dropout"]["final"] = "true"
    if args.profile not in PROFILES:
        raise LabError(f"unknown profile '{args.profile}' (choose from: {', '.join(PROFILES)})")
    for name in names:  # validate every config before spending time on the first experiment
        make_config(name, args.profile, {**per[name], **({"seed": str(args.seed)} if args.seed is not None else {})})
    ctx = RunContext(device=resolve_device(args.device), profile=args.profile, quiet=args.quiet)
    _check_writable(args.out)
    with _locked(args.out):
        etas, extra = _announce_costs(args, names, per, ctx)
        for name in names:
            start = time.perf_counter()
            result, cached = run_experiment(name, ctx=dataclasses.replace(ctx, eta_s=etas.get(name, {})), out=args.out,
                                            overrides=per[name], seed=args.seed, force=args.force, note=_note,
                                            extra_provenance=extra)
            took = time.perf_counter() - start
            how = "cached, config and code unchanged" if cached else f"ran in {took:.1f} s"
            print(f"{name}: {how} -> {args.out / 'data' / (name + '.json')}", flush=True)
    return 0


def _announce_costs(args, names: list[str], per: dict, ctx: RunContext) -> tuple[dict[str, dict[str, float]], dict]:
    """One line per part before any work: cached (costs nothing) or its FLOPs and expected time at the matmul rate
    measured now; returns each stale part's phase estimates (for the progress bars) and the rate (for provenance)."""
    from lab import cost
    from lab.runner import is_cached

    seed = {"seed": str(args.seed)} if args.seed is not None else {}
    cfgs = {name: make_config(name, args.profile, {**per[name], **seed}) for name in names}
    stale = [name for name in names if args.force or not is_cached(name, cfgs[name], ctx, args.out)]
    if not stale:
        for name in names:
            print(f"{_part_label(name)}: cached, costs nothing", flush=True)
        return {}, {}
    rate, how = _rate(args, ctx.device)
    etas, total = {}, 0.0
    for name in names:
        if name not in stale:
            print(f"{_part_label(name)}: cached, costs nothing", flush=True)
            continue
        plan = cost.estimate(name, cfgs[name])
        etas[name] = {p.name: p.seconds(rate) for p in plan.phases}
        total += plan.seconds(rate)
        print(cost.estimate_line(_part_label(name), plan, rate, how), flush=True)
    if len(stale) > 1:
        print(f"in all: about {cost.fmt_duration(total)}", flush=True)
    return etas, {"matmul_gflops": round(rate.matmul, 2),
                  "step_gflops": round(rate.step, 2) if rate.step is not None else None}


def _note(message: str) -> None:
    print(f"note: {printable(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(out: Path):
    """Hold OUT's lock (one lab process per --out) and clear what killed runs left there."""
    with lock_out(out):
        clean_leftovers(out)
        yield


def cmd_check(args) -> int:
    from lab.gate import gate_names, run_gate, write_record
    from lab.report import checks_path

    device = resolve_device(args.device)
    _check_writable(args.out)
    refuse_non_file(checks_path(args.out), "the gate record")
    with _locked(args.out):
        start = time.perf_counter()
        names = gate_names()
        checks = run_gate(device, names)  # Ctrl-C raises out of here: an interrupted gate is never recorded
        write_record(checks_path(args.out), names, checks, device, time.perf_counter() - start)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.measured}  (expected {c.expected})")
    failed = [c for c in checks if not c.passed]
    for c in failed:
        print(f"gate failed: {c.name}: {c.detail}", file=sys.stderr)
    return EXIT_GATE_FAILED if failed else 0


def cmd_audit(args) -> int:
    from lab.audit import audit_out, failure_lines

    device = resolve_device(args.device)
    if not (Path(args.out) / "data").is_dir():
        raise LabError(f"no experiment results in {Path(args.out) / 'data'}: run python -m lab run all first")
    _check_writable(args.out)
    with _locked(args.out):
        record = audit_out(args.out, device, note=_note)
    for line in failure_lines(record):
        print(line, file=sys.stderr)
    print(f"{record.summary()} in {record.wall_s:.1f} s -> {Path(args.out) / 'data' / 'audit.json'}")
    return EXIT_GATE_FAILED if record.failures else 0


def cmd_report(args) -> int:
    from lab.report import render_report

    if args.out.exists() and not args.out.is_dir():
        raise LabError(f"--out {args.out} is a file, not a report folder; pass the folder that holds data/")
    refuse_links(args.out, ("data", "figures"))
    with _locked(args.out):
        paths = render_report(args.out, warn=_warn)
    print("\n".join(printable(line) for line in paths["summary"]))
    return 0


def _warn(message: str) -> None:
    print(f"warning: {printable(message)}", file=sys.stderr, flush=True)


def cmd_pdf(args) -> int:
    from lab.pdf import print_pdf

    if not args.out.is_dir():
        raise LabError(f"no report at {args.out / 'index.html'}: render it first (make report, or python -m lab report)")
    with _locked(args.out):
        target = print_pdf(args.out)
    print(f"pdf: {target}")
    return 0


def _check_writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be written (or its data folder is a link elsewhere).
    The probe is a new journalled temp file (lab.outdir.make_temp_file): never a path someone else made."""
    data = Path(out) / "data"
    refuse_links(out, ("data", "figures"))
    try:
        data.mkdir(parents=True, exist_ok=True)
        fd, probe = make_temp_file(data, ".write-probe.", ".tmp")
        os.close(fd)
        probe.unlink(missing_ok=True)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != Path(out) else ""
        raise LabError(f"cannot write to --out {out}{where}: {exc.strerror or exc}; {_fix_for(exc, '--out')}") from None


_FIXES = {
    errno.ENOSPC: "free some disk space (or use an --out on a disk with room) and rerun",
    errno.EDQUOT: "free some space within your disk quota (or use another --out) and rerun",
    errno.EROFS: "that file system is read-only: use another {what}",
    errno.EACCES: "make it writable for you (or use another {what}) and rerun",
    errno.EPERM: "make it writable for you (or use another {what}) and rerun",
    errno.ENOENT: "a folder on that path does not exist: create it or fix the path",
    errno.ENOTDIR: "a file sits where a folder is expected: move it away or use another {what}",
    errno.EISDIR: "a folder sits where a file is expected: move it away and rerun",
    errno.EEXIST: "something already exists there: move it away and rerun",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ELOOP: "the path has a symbolic-link loop: fix the link",
    errno.EMFILE: "too many open files: close other programs and rerun",
    errno.ENOMEM: "out of memory: lower the sizes with --set (python -m lab list shows them) or free memory",
}


def _fix_for(exc: OSError, what: str = "--out") -> str:
    return _FIXES.get(exc.errno, "check that path and rerun").format(what=what)


def os_error_line(exc: OSError) -> str:
    """One line for any OSError: the path(s) it concerns, the system's reason, and what to do about it."""
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths + ': ' if paths else ''}{reason}; {_fix_for(exc, '--out')}"


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


def _internal_error(exc: BaseException) -> str:
    """A bug: one line on stderr; the traceback goes to a log file so it can still be diagnosed."""
    log = None
    try:
        fd, name = tempfile.mkstemp(prefix="lab-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"python -m lab {' '.join(sys.argv[1:])}\n")
            traceback.print_exception(exc, file=fh)
        log = name
    except OSError:
        pass
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    where = f"traceback in {log}" if log else "traceback not saved"
    return (f"internal error ({type(exc).__name__}: {first}): a bug in the lab, nothing was lost; {where}; "
            f"{DEBUG_ENV}=1 shows it here")


COMMANDS = {"list": cmd_list, "run": cmd_run, "check": cmd_check, "audit": cmd_audit, "report": cmd_report,
            "pdf": cmd_pdf}


class Terminated(BaseException):
    """SIGTERM turned into an exception, so `finally` blocks clean up temp files like on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text read from a file or a path, safe for a terminal: control characters (escape sequences, line breaks)
    shown as escapes, never interpreted."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r", "\t": " "}.get(m.group(), f"\\x{ord(m.group()):02x}"),
                        str(text))


def _error(message: str) -> None:
    """The one error line: line breaks and other control characters inside it (a path can hold one) escaped."""
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)


def _stdout_name() -> str:
    try:
        return os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError, AttributeError):
        return "standard output"


class _Output:
    """sys.stdout as main() sees it: a write or flush that fails (`list > /dev/full`) is one LabError naming where
    the output goes, and nothing is written there afterwards (no second complaint at the interpreter's exit)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def _failed(self, exc: OSError) -> LabError:
        name = _stdout_name()
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        fix = ("free some disk space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check that file")
        return LabError(f"cannot write the output to {name}: {exc.strerror or exc}; {fix}, or redirect the output "
                        "elsewhere")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None


def _flush_stdout() -> None:
    """Flush our output inside main(): a full or closed output is then one error line, not an exit-time trace."""
    sys.stdout.flush()


def _printable_streams() -> None:
    """Paths the terminal's encoding cannot show are printed escaped, never crash a print (stderr already does)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # replaces the start-up handler
    _printable_streams()
    real_stdout = sys.stdout
    sys.stdout = _Output(real_stdout)
    try:
        args = build_parser().parse_args(argv)
        code = COMMANDS[args.command](args)
        _flush_stdout()
        return code
    except LabError as exc:
        from lab.audit import AuditFailed

        if isinstance(exc, AuditFailed):  # numbers the audit could not reproduce: like a failed gate
            for line in exc.lines:
                print(line, file=sys.stderr, flush=True)
            print("error: audit failed, no report rendered (python -m lab audit reruns it)", file=sys.stderr)
            return EXIT_GATE_FAILED
        _error(str(exc))
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Terminated) as exc:
        print("interrupted: finished experiments are saved and the previous report is untouched; rerun to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except SystemExit:
        raise  # argparse's --help and --version
    except BrokenPipeError:
        try:  # the reader of our output went away (`... | head`): nothing to report to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        if isinstance(exc, OSError):
            _error(os_error_line(exc))
            return EXIT_USER_ERROR
        if _is_out_of_memory(exc):
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            _error(f"out of memory{f' ({first})' if first else ''}; lower the sizes with --set (python -m lab list shows "
                   "them) or free memory")
            return EXIT_USER_ERROR
        _error(_internal_error(exc))
        return EXIT_INTERNAL
    finally:
        sys.stdout = real_stdout
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C changes nothing any more
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if code in (130, 143):
        # Interrupted, handled, reported: exit with exactly that code. CPython remembers a KeyboardInterrupt that
        # ended any code it ran through its C API (a library's embedded eval) and would then end the process by
        # SIGINT at finalization (status -2 instead of 130), depending on where the signal landed.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)
