"""Command line: python -m lab {list,run,check,report,pdf} [--profile quick|full] [--device] [--seed] [--out].

    python -m lab run deep_init --profile quick && python -m lab report

Every user error (unknown experiment, bad profile, bad override, missing data...) is one line on
stderr and exit code 2; a failed gate is exit code 1; nothing already written is destroyed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from lab import DEFAULT_OUT
from lab.config import CONFIG_CLASSES, PROFILES, config_to_dict, make_config, parse_overrides
from lab.context import DEVICE_CHOICES, RunContext, resolve_device
from lab.errors import LabError
from lab.experiments import EXPERIMENTS, expand_names

EXIT_GATE_FAILED = 1
EXIT_USER_ERROR = 2


def _common(p: argparse.ArgumentParser, profile: bool = True) -> None:
    if profile:
        p.add_argument("--profile", default="full", help="quick (smoke size, ~1 min) or full (the lab's protocol) [default: full]")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}; auto = cuda when present [default: auto]")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder; results go to OUT/data [default: {DEFAULT_OUT}]")
    p.add_argument("--quiet", action="store_true", help="no progress bars [default: bars on a terminal]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,check,report,pdf}")

    sub.add_parser("list", help="list experiments and their settings (with the profile's values)").add_argument(
        "--profile", default="full", help="show the values of this profile [default: full]")

    run = sub.add_parser("run", help="run experiments (cached: only stale ones rerun)")
    run.add_argument("experiments", nargs="+", help=f"names: {', '.join(EXPERIMENTS)}, or all")
    _common(run)
    run.add_argument("--seed", type=int, default=None, help="override every experiment's seed [default: config seed, 0]")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a setting, e.g. epochs=5 or dropout.epochs=5 (repeatable)")
    run.add_argument("--force", action="store_true", help="rerun even if a fresh cached result exists")
    run.add_argument("--final", action="store_true",
                     help="Part 3 only: evaluate once on MNIST's test split, reported in its own section [default: off]")

    check = sub.add_parser("check", help="run the Karpathy-recipe gate and record it for the report")
    _common(check, profile=False)

    report = sub.add_parser("report", help="render OUT/index.html and OUT/report.md from saved results")
    report.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder [default: {DEFAULT_OUT}]")

    pdf = sub.add_parser("pdf", help="print the rendered OUT/index.html to OUT/report.pdf (headless Chromium)")
    pdf.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder [default: {DEFAULT_OUT}]")
    return parser


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
    for name, (part, title) in EXPERIMENTS.items():
        cfg = config_to_dict(make_config(name, args.profile))
        print(f"{name}  (part {part}: {title})")
        doc = CONFIG_CLASSES[name].__doc__.strip().splitlines()[0]
        print(f"    {doc}")
        for key, value in cfg.items():
            print(f"    {key} = {value}")
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
    for name in names:
        start = time.perf_counter()
        result, cached = run_experiment(name, ctx=ctx, out=args.out, overrides=per[name], seed=args.seed, force=args.force)
        took = time.perf_counter() - start
        how = "cached, config and code unchanged" if cached else f"ran in {took:.1f} s"
        print(f"{name}: {how} -> {args.out / 'data' / (name + '.json')}", flush=True)
    return 0


def cmd_check(args) -> int:
    from lab.gate import gate_names, run_gate, write_record
    from lab.report import checks_path

    device = resolve_device(args.device)
    _check_writable(args.out)
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


def cmd_report(args) -> int:
    from lab.report import render_report

    paths = render_report(args.out)
    print(f"report: {paths['html']} (self-contained) and {paths['markdown']}")
    return 0


def cmd_pdf(args) -> int:
    from lab.pdf import print_pdf

    print(f"pdf: {print_pdf(args.out)}")
    return 0


def _check_writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be written."""
    data = Path(out) / "data"
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise LabError(f"cannot write to --out {out}: {exc.strerror or exc}") from None


COMMANDS = {"list": cmd_list, "run": cmd_run, "check": cmd_check, "report": cmd_report, "pdf": cmd_pdf}


class Terminated(BaseException):
    """SIGTERM turned into an exception, so `finally` blocks clean up temp files like on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (KeyboardInterrupt, Terminated) as exc:
        print("interrupted: finished experiments are saved and the previous report is untouched; rerun to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
