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
        (["run", "deep_init", "--final"], "--final evaluates Part 3"),
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


# --- bad input that needs a file system set-up: MNIST mirror, damaged data, old results -------------------

def _one_line_exit_2(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_mnist_mirror_without_the_files(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MNIST_MIRROR", str(empty))
    err = _one_line_exit_2(["run", "dropout", "--profile", "quick", "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert "MNIST_MIRROR" in err and "train-images-idx3-ubyte" in err


def test_mnist_mirror_that_is_not_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MNIST_MIRROR", str(tmp_path / "nowhere"))
    err = _one_line_exit_2(["run", "dropout", "--profile", "quick", "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert "is not a folder" in err


def test_damaged_mnist_copy_names_the_file(tmp_path, monkeypatch, capsys):
    import gzip
    import os
    import shutil

    real = os.environ.get("MNIST_MIRROR")
    if not real or not os.path.isdir(real):
        pytest.skip("MNIST_MIRROR is not set: no real MNIST files to damage")
    mirror = tmp_path / "mirror"
    shutil.copytree(real, mirror)
    labels = mirror / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[100] ^= 0x01  # one flipped bit in one label
    labels.chmod(0o644)
    labels.write_bytes(gzip.compress(bytes(data)))
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MNIST_MIRROR", str(mirror))
    err = _one_line_exit_2(["run", "dropout", "--profile", "quick", "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert "train-labels-idx1-ubyte" in err and "damaged" in err


def test_results_json_from_an_older_version(tmp_path, capsys):
    import json

    from lab.results import SCHEMA_VERSION

    assert main(["check", "--out", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    stale = {"experiment": "deep_init", "config": {}, "metrics": {}, "provenance": {}, "schema": SCHEMA_VERSION - 1}
    (tmp_path / "data" / "deep_init.json").write_text(json.dumps(stale))
    err = _one_line_exit_2(["report", "--out", str(tmp_path)], capsys)
    assert "incompatible" in err and "--force" in err
    assert not (tmp_path / "index.html").exists()
