"""MNIST loading: mirror copy with md5 checks of the uncompressed files, one-line errors, the lab's split.

Most tests use a tiny synthetic MNIST (real idx format, a few images) with its own checksum table, so they
run in milliseconds and need no dataset; the last ones check the real files when they are available.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from lab import data as D
from lab.errors import LabError

N_TRAIN_IMAGES, N_TEST_IMAGES = 40, 8


def _idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, labels.shape[0]) + labels.astype(np.uint8).tobytes()


@pytest.fixture()
def fake_mnist(tmp_path):
    """A mirror folder with the four MNIST file names (gzipped idx), the arrays, and their md5 table."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN_IMAGES, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN_IMAGES),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST_IMAGES, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, N_TEST_IMAGES),
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    checksums = {}
    for name, arr in arrays.items():
        raw = _idx_images(arr) if "images" in name else _idx_labels(arr)
        checksums[name] = hashlib.md5(raw).hexdigest()
        (mirror / f"{name}.gz").write_bytes(gzip.compress(raw))
    return {"mirror": mirror, "root": tmp_path / "data", "checksums": checksums, "arrays": arrays}


def test_mirror_is_extracted_into_torchvision_layout_and_verified(fake_mnist):
    raw = D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    assert raw == fake_mnist["root"] / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(fake_mnist["checksums"])  # no .gz, no leftover temp file
    for name, md5 in fake_mnist["checksums"].items():
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == md5


def test_present_files_need_no_mirror_and_no_download(fake_mnist, monkeypatch):
    D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    monkeypatch.delenv(D.MIRROR_ENV, raising=False)

    def no_download(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("tried to download although the files are present")

    monkeypatch.setattr(D, "_download", no_download)
    D.ensure_mnist(fake_mnist["root"], checksums=fake_mnist["checksums"])


def test_damaged_local_file_is_a_one_line_error_naming_it(fake_mnist):
    raw = D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    path = raw / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LabError, match="train-labels-idx1-ubyte is damaged.*delete it") as exc:
        D.mnist_split(10, 20, root=fake_mnist["root"], checksums=fake_mnist["checksums"])
    assert "\n" not in str(exc.value)


def test_truncated_gz_in_mirror_is_an_error_and_leaves_nothing_behind(fake_mnist):
    gz = fake_mnist["mirror"] / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    with pytest.raises(LabError, match="t10k-images-idx3-ubyte.gz is damaged.*MNIST_MIRROR"):
        D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    raw = fake_mnist["root"] / "MNIST" / "raw"
    assert not (raw / "t10k-images-idx3-ubyte").exists()
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]


def test_partial_copies_of_a_killed_run_are_removed_by_the_next_copy(fake_mnist):
    from lab.outdir import make_temp_file

    raw = fake_mnist["root"] / "MNIST" / "raw"
    raw.mkdir(parents=True)
    fd, partial = make_temp_file(raw, ".train-images-idx3-ubyte.", ".tmp")  # journalled, as a killed copy left it
    os.write(fd, b"half a copy")
    os.close(fd)
    look_alike = raw / ".train-images-idx3-ubyte.k3j_9x2a.tmp"  # named like one, never journalled: not the lab's
    look_alike.write_bytes(b"someone else's file")
    D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    assert sorted(p.name for p in raw.iterdir()) == sorted([*fake_mnist["checksums"], look_alike.name])
    assert not partial.exists() and look_alike.read_bytes() == b"someone else's file"


def test_folder_in_place_of_an_mnist_file_names_it(fake_mnist):
    raw = fake_mnist["root"] / "MNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").mkdir(parents=True)
    with pytest.raises(LabError, match="t10k-labels-idx1-ubyte is not a file.*remove it"):
        D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])


def test_full_data_disk_blames_the_data_folder_not_the_mirror(fake_mnist, monkeypatch):
    import errno

    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    # the copy's writes fail as on a full disk (only ensure_mnist runs while this is patched)
    monkeypatch.setattr(D.os, "fdopen", lambda fd, mode="r", *a, **k: FullFile(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(LabError, match="No space left on device.*free disk space.*LAB_DATA_DIR") as exc:
        D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    assert "MNIST_MIRROR" not in str(exc.value)
    raw = fake_mnist["root"] / "MNIST" / "raw"
    assert not [p for p in raw.iterdir() if p.name.endswith(".tmp")]


def test_mirror_file_with_wrong_content_fails_the_md5(fake_mnist):
    (fake_mnist["mirror"] / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_labels(np.zeros(N_TRAIN_IMAGES))))
    with pytest.raises(LabError, match="train-labels-idx1-ubyte.gz is damaged \\(md5"):
        D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])


def test_empty_mirror_folder_from_the_environment_says_what_to_set(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(D.MIRROR_ENV, str(empty))
    monkeypatch.setenv(D.DATA_DIR_ENV, str(tmp_path / "data"))
    assert D.data_root() == (tmp_path / "data").resolve()
    with pytest.raises(LabError, match=f"{D.MIRROR_ENV}=.*empty has no train-images-idx3-ubyte.gz"):
        D.mnist_split(10, 20)


def test_mirror_that_is_not_a_folder(tmp_path):
    with pytest.raises(LabError, match="is not a folder"):
        D.ensure_mnist(tmp_path / "data", mirror=tmp_path / "nowhere")


def test_failed_download_without_mirror_is_a_lab_error(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self):
        raise URLError("no route to host")

    monkeypatch.delenv(D.MIRROR_ENV, raising=False)
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(LabError, match="could not be downloaded.*set MNIST_MIRROR"):
        D.ensure_mnist(tmp_path / "data")


def test_split_sizes_ranges_normalisation_and_labels(fake_mnist):
    D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    m = D.mnist_split(10, 20, root=fake_mnist["root"], checksums=fake_mnist["checksums"])
    s = m.split
    assert s.x_train.shape == (10, 784) and s.x_val.shape == (20, 784) and s.n_classes == 10
    assert m.train_range == (0, 10) and m.val_range == (10, 30)
    assert set(range(*m.train_range)).isdisjoint(range(*m.val_range))
    assert abs(float(s.x_train.mean())) < 1e-5 and abs(float(s.x_train.std()) - 1) < 1e-5
    images = torch.from_numpy(fake_mnist["arrays"]["train-images-idx3-ubyte"]).float().reshape(-1, 784) / 255
    labels = torch.from_numpy(fake_mnist["arrays"]["train-labels-idx1-ubyte"])
    mean, std = images[:10].mean(), images[:10].std()  # training statistics only
    assert m.mean == pytest.approx(float(mean)) and m.std == pytest.approx(float(std))
    torch.testing.assert_close(s.x_val, (images[10:30] - mean) / std)
    assert torch.equal(s.y_train, labels[:10]) and torch.equal(s.y_val, labels[10:30])
    assert m.x_test is None and m.y_test is None  # the test split stays untouched unless asked for


def test_test_split_only_on_request_and_with_training_statistics(fake_mnist):
    D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    m = D.mnist_split(10, 20, with_test=True, root=fake_mnist["root"], checksums=fake_mnist["checksums"])
    test = torch.from_numpy(fake_mnist["arrays"]["t10k-images-idx3-ubyte"]).float().reshape(-1, 784) / 255
    torch.testing.assert_close(m.x_test, (test - m.mean) / m.std)
    assert m.y_test.shape == (N_TEST_IMAGES,)


def test_split_larger_than_the_training_split_is_refused(fake_mnist):
    D.ensure_mnist(fake_mnist["root"], mirror=fake_mnist["mirror"], checksums=fake_mnist["checksums"])
    with pytest.raises(LabError, match="exceeds"):
        D.mnist_split(30, 20, root=fake_mnist["root"], checksums=fake_mnist["checksums"])


# ----- the real files (skipped where MNIST is neither present nor reachable through MNIST_MIRROR) -----


def test_real_mnist_lab_split(real_mnist):  # real_mnist (tests/conftest.py): skip where MNIST is unavailable
    m = D.mnist_split(5_000, 10_000)
    assert m.split.x_train.shape == (5_000, 784) and m.split.x_val.shape == (10_000, 784)
    assert m.train_range == (0, 5_000) and m.val_range == (5_000, 15_000)
    assert 0.12 < m.mean < 0.14 and 0.29 < m.std < 0.32  # MNIST's well-known 0.1307 / 0.3081, on 5,000 images
    assert abs(float(m.split.x_train.mean())) < 1e-4 and abs(float(m.split.x_train.std()) - 1) < 1e-4
    assert m.split.y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the first training labels of MNIST
    assert sorted(torch.bincount(m.split.y_train, minlength=10).tolist())[0] > 400  # all ten digits present


def test_real_mirror_copy_verifies_against_the_official_md5(tmp_path):
    mirror = os.environ.get(D.MIRROR_ENV)
    if not mirror:
        pytest.skip(f"{D.MIRROR_ENV} is unset")
    raw = D.ensure_mnist(tmp_path, mirror=Path(mirror))
    assert {p.name for p in raw.iterdir()} == set(D.MNIST_MD5)
