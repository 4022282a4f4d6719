"""The command line: help and list work; every user error is one line on stderr with exit code 2."""

import subprocess
import sys

import pytest

from lab import PROJECT_ROOT
from lab.__main__ import main


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def test_help_lists_commands_and_defaults():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("list", "run", "check", "report"):
        assert word in out.stdout
    run_help = run_cli("run", "--help").stdout
    assert "[default: full]" in run_help and "--seed" in run_help and "--device" in run_help and "--out" in run_help


def test_list_shows_every_experiment(capsys):
    assert main(["list", "--profile", "quick"]) == 0
    text = capsys.readouterr().out
    for name in ("shallow_init", "deep_init", "dropout"):
        assert name in text
    assert "n_samples = 2000" in text  # the quick profile's value, not the default


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "deep_init", "--profile", "fast"], "unknown profile 'fast'"),
        (["run", "deep_init", "--set", "widht=5"], "unknown setting 'widht'"),
        (["run", "deep_init", "--set", "width=wide"], "expected a value of type int"),
        (["run", "deep_init", "--set", "width"], "must look like key=value"),
        (["run", "deep_init", "--set", "dropout.epochs=2"], "not among those being run"),
        (["run", "dropout", "--set", "p_hidden=1.5"], "p_hidden must be in [0, 1)"),
        (["run", "deep_init", "--device", "tpu"], "unknown device 'tpu'"),
        (["list", "--profile", "slow"], "unknown profile 'slow'"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    code = main([*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_cuda_without_gpu_is_a_clear_error(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present here")
    assert main(["run", "deep_init", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_unwritable_out_is_a_clear_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["run", "deep_init", "--profile", "quick", "--out", str(blocker)]) == 2
    assert "cannot write to --out" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_report_without_gate_results_refuses(capsys, tmp_path):
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "no gate results" in capsys.readouterr().err
    assert not (tmp_path / "index.html").exists()
