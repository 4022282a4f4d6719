"""Data: the two-rings toy generator and MNIST (torchvision layout, local mirror, checksums). No plotting.

    split = rings_split(n_train=100, n_val=10_000, seed=0)   # normalised with the training statistics
    mnist = mnist_split(n_train=5_000, n_val=10_000)          # MNIST_MIRROR=/path/to/gz-files when offline
"""

from __future__ import annotations

import gzip
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from lab import PROJECT_ROOT
from lab.errors import LabError
from lab.outdir import clean_temp_files, file_hash, folder_lock, make_temp_file

RING_RADII = (1.0, 4.0)  # class 0 on the inner ring, class 1 on the outer
RING_NOISE = 1.0  # radial noise U(-1, 1)
RING_CENTER = (10.0, 10.0)  # deliberately off-origin: unnormalised inputs are the lab's trap


def two_rings(
    n: int,
    rng: np.random.Generator,
    radii: tuple[float, float] = RING_RADII,
    noise: float = RING_NOISE,
    center: tuple[float, float] = RING_CENTER,
) -> tuple[np.ndarray, np.ndarray]:
    """n points on two noisy rings, classes balanced and shuffled: (float32 [n, 2], int64 [n])."""
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    radius = np.asarray(radii, dtype=np.float64)[labels] + rng.uniform(-noise, noise, size=n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    xy = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1) + np.asarray(center)
    return xy.astype(np.float32), labels


@dataclass(frozen=True)
class Split:
    """Train/validation tensors plus the training statistics used to normalise both."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    mean: torch.Tensor  # per-feature mean of the raw training inputs
    std: torch.Tensor  # per-feature std of the raw training inputs
    n_classes: int
    # The same rows before standardisation (any scale), kept so the gate can recompute the statistics.
    x_train_raw: torch.Tensor | None = None
    x_val_raw: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Split":
        keys = ("x_train", "y_train", "x_val", "y_val", "mean", "std", "x_train_raw", "x_val_raw")
        move = {k: (None if getattr(self, k) is None else getattr(self, k).to(device)) for k in keys}
        return Split(**move, n_classes=self.n_classes)


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


def rings_split(n_train: int, n_val: int, seed: int, normalize: bool = True) -> Split:
    """Training and validation sets from one seeded generator; validation drawn after training."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = two_rings(n_train, rng)
    x_va, y_va = two_rings(n_val, rng)
    raw_train, raw_val = torch.from_numpy(x_tr), torch.from_numpy(x_va)
    mean, std = raw_train.mean(0), raw_train.std(0)
    x_train, x_val = raw_train, raw_val
    if normalize:
        x_train, x_val = standardize(raw_train, mean, std), standardize(raw_val, mean, std)
    return Split(x_train, torch.from_numpy(y_tr), x_val, torch.from_numpy(y_va), mean, std, n_classes=2,
                 x_train_raw=raw_train, x_val_raw=raw_val)


# ---------------------------------------------------------------------------------------------------------
# MNIST: torchvision's layout (<data root>/MNIST/raw/<uncompressed idx files>), read by torchvision itself.
# Offline machines copy the files from the folder named by MNIST_MIRROR; we extract the .gz files ourselves
# and check the md5 of the *uncompressed* content, because a recompressed .gz (same images, other bytes)
# fails torchvision's .gz checksum although the data are intact.

DATA_DIR_ENV = "LAB_DATA_DIR"  # overrides the data root (default: <project root>/data, gitignored)
MIRROR_ENV = "MNIST_MIRROR"  # folder holding the four MNIST .gz files (or uncompressed idx files)

# md5 of the uncompressed idx files (the official MNIST content; torchvision checks the .gz instead).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def data_root() -> Path:
    """Where datasets live: $LAB_DATA_DIR, else <project root>/data (never the working directory)."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else PROJECT_ROOT / "data"


def mnist_raw_folder(root: Path | None = None) -> Path:
    return Path(root or data_root()) / "MNIST" / "raw"




def _data_folder_error(path: Path, exc: OSError) -> LabError:
    """The local data folder cannot be written: say where and how to fix it (never blame the mirror)."""
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return LabError(f"{exc.filename or path}: a file sits where the data folder {path} needs a folder; move it "
                        f"away, or set {DATA_DIR_ENV} to another folder")
    return LabError(f"cannot write the MNIST copy in {path} ({exc.strerror or exc}); make that folder writable (or "
                    f"free disk space), or set {DATA_DIR_ENV} to a writable folder")


def _mirror_error(mirror: Path, exc: OSError) -> LabError:
    return LabError(f"cannot read the folder {MIRROR_ENV}={mirror} ({exc.strerror or exc}): make it readable for you "
                    f"(or point {MIRROR_ENV} at a readable folder holding the four MNIST .gz files)")


def _copy_from_mirror(name: str, mirror: Path, raw: Path, md5: str) -> None:
    """Extract (or copy) one file from the mirror into raw/, verify its md5, then rename it into place."""
    gz, plain = mirror / f"{name}.gz", mirror / name
    try:
        has_gz, has_plain = gz.is_file(), plain.is_file()
    except OSError as exc:  # the mirror folder cannot be searched: say so, it is not the data folder's fault
        raise _mirror_error(mirror, exc) from None
    if not has_gz and not has_plain:
        raise LabError(
            f"{MIRROR_ENV}={mirror} has no {name}.gz: point {MIRROR_ENV} at a folder holding the four MNIST .gz files"
        )
    source = gz if has_gz else plain
    damaged = f"replace that file in {MIRROR_ENV}"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        fd, tmp = make_temp_file(raw, f".{name}.", ".tmp")  # journalled: a killed copy is removed by the next
    except OSError as exc:
        raise _data_folder_error(raw, exc) from None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = gzip.open(source, "rb") if source is gz else open(source, "rb")
            except OSError as exc:
                raise LabError(f"cannot read {source} ({exc.strerror or exc}): make it readable or {damaged}") from None
            with src:
                while True:
                    try:
                        chunk = src.read(1 << 20)
                    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                        raise LabError(f"{source} is damaged or unreadable ({exc}): {damaged}") from None
                    if not chunk:
                        break
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _data_folder_error(raw, exc) from None
        got = file_hash(tmp, "md5")
        if got != md5:
            raise LabError(f"{source} is damaged (md5 of its content {got}, expected {md5}): {damaged}")
        try:
            os.replace(tmp, raw / name)
        except IsADirectoryError:
            raise LabError(f"{raw / name} is a folder where the MNIST file belongs: remove it and rerun") from None
        except OSError as exc:
            raise _data_folder_error(raw, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def _download(root: Path) -> None:
    """No mirror given: let torchvision download and extract (machines with internet)."""
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=True, download=True)
    except Exception as exc:  # network errors come as URLError, RuntimeError, OSError, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LabError(
            f"MNIST is missing under {mnist_raw_folder(root)} and could not be downloaded ({reason}); "
            f"set {MIRROR_ENV} to a folder holding the four MNIST .gz files"
        ) from None


def _fetch_missing(root: Path, raw: Path, mirror: Path | str | None, checksums: Mapping[str, str]) -> None:
    missing = [name for name in checksums if not (raw / name).is_file()]
    if missing and mirror is not None:
        mirror = Path(mirror).expanduser()
        try:
            is_dir = mirror.is_dir()
            if is_dir:
                os.listdir(mirror)  # readable (searchable alone is not enough to tell the user what is wrong)
        except OSError as exc:
            raise _mirror_error(mirror, exc) from None
        if not is_dir:
            raise LabError(f"{MIRROR_ENV}={mirror} is not a folder: point it at the folder with the four MNIST .gz files")
        for name in missing:
            _copy_from_mirror(name, mirror, raw, checksums[name])
    elif missing:
        _download(root)


def ensure_mnist(
    root: Path | None = None, mirror: Path | str | None = None, checksums: Mapping[str, str] = MNIST_MD5
) -> Path:
    """Make sure the four uncompressed MNIST files are in <root>/MNIST/raw/ with the right md5; return that folder.

    Missing files come from ``mirror`` (default: $MNIST_MIRROR), else from torchvision's download.
    A damaged file is a LabError naming it, never a traceback from inside torchvision.
    """
    root = Path(root or data_root())
    raw = mnist_raw_folder(root)
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV, "").strip() or None
    for folder in (root, root / "MNIST", raw):
        if folder.exists() and not folder.is_dir():
            raise LabError(f"{folder} is a file where the data folder needs a folder: move it away, or set "
                           f"{DATA_DIR_ENV} to another folder")
    for name in checksums:
        if (raw / name).exists() and not (raw / name).is_file():
            raise LabError(f"{raw / name} is not a file (a folder?) where the MNIST file belongs: remove it and rerun")
    if any(not (raw / name).is_file() for name in checksums):
        try:
            raw.mkdir(parents=True, exist_ok=True)
            with folder_lock(raw.parent):  # two runs copying at once would each see the other's files half done
                clean_temp_files(raw)  # partial copies of a killed run (none is in progress: we hold the lock)
                try:
                    _fetch_missing(root, raw, mirror, checksums)
                finally:
                    clean_temp_files(raw)  # a failed copy's temp file, and the journal itself
        except OSError as exc:
            raise _data_folder_error(raw, exc) from None
    for name, md5 in checksums.items():
        path = raw / name
        if not path.is_file():
            raise LabError(f"{path} is missing after the download; delete {raw} and rerun, or set {MIRROR_ENV}")
        try:
            got = file_hash(path, "md5")
        except OSError as exc:
            raise LabError(f"cannot read {path} ({exc.strerror or exc}): make it readable, or delete it and rerun "
                           "to copy it again") from None
        if got != md5:
            raise LabError(f"{path} is damaged (md5 {got}, expected {md5}): delete it and rerun to copy it again")
    return raw


def load_mnist(train: bool, root: Path | None = None, checksums: Mapping[str, str] = MNIST_MD5) -> tuple[torch.Tensor, torch.Tensor]:
    """One MNIST split as read by torchvision: (uint8 images [n, 28, 28], int64 labels [n])."""
    from torchvision.datasets import MNIST

    root = Path(root or data_root())
    ensure_mnist(root, checksums=checksums)
    try:
        ds = MNIST(str(root), train=train, download=False)
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise LabError(f"cannot read MNIST from {mnist_raw_folder(root)} ({exc}); delete that folder and rerun") from None
    return ds.data, ds.targets.long()


@dataclass(frozen=True)
class MnistSplit:
    """MNIST as the lab uses it: flattened, scaled to [0, 1], standardised with training statistics."""

    split: Split  # x_*: float32 [n, 784]; mean/std: 0-d tensors (one scalar over all training pixels)
    train_range: tuple[int, int]  # [start, stop) indices into MNIST's training split
    val_range: tuple[int, int]
    x_test: torch.Tensor | None = None  # MNIST's test split, only when asked for (the lab's --final)
    y_test: torch.Tensor | None = None
    x_test_raw: torch.Tensor | None = None  # the test images before standardisation (uint8), for the gate

    @property
    def mean(self) -> float:
        return float(self.split.mean)

    @property
    def std(self) -> float:
        return float(self.split.std)


def mnist_split(
    n_train: int,
    n_val: int,
    *,
    with_test: bool = False,
    root: Path | None = None,
    checksums: Mapping[str, str] = MNIST_MD5,
) -> MnistSplit:
    """First n_train training images for training, the next n_val for validation; test only if asked.

    One scalar mean/std over all training pixels (the usual MNIST choice: a per-pixel std is zero at
    the always-black border pixels, so per-feature standardisation would divide by zero).
    """
    images, labels = load_mnist(train=True, root=root, checksums=checksums)
    if n_train + n_val > images.shape[0]:
        raise LabError(f"n_train + n_val = {n_train + n_val} exceeds the {images.shape[0]:,} MNIST training images")
    x = images.reshape(images.shape[0], -1).float() / 255.0
    train_range, val_range = (0, n_train), (n_train, n_train + n_val)
    x_train, x_val = x[slice(*train_range)], x[slice(*val_range)]
    mean, std = x_train.mean(), x_train.std()
    flat = images.reshape(images.shape[0], -1)  # uint8 views: the raw rows cost no copy
    split = Split(
        standardize(x_train, mean, std),
        labels[slice(*train_range)],
        standardize(x_val, mean, std),
        labels[slice(*val_range)],
        mean,
        std,
        n_classes=10,
        x_train_raw=flat[slice(*train_range)],
        x_val_raw=flat[slice(*val_range)],
    )
    x_test = y_test = test_raw = None
    if with_test:
        test_images, y_test = load_mnist(train=False, root=root, checksums=checksums)
        test_raw = test_images.reshape(test_images.shape[0], -1)
        x_test = standardize(test_raw.float() / 255.0, mean, std)
    return MnistSplit(split, train_range, val_range, x_test, y_test, test_raw)


__all__ = [
    "DATA_DIR_ENV",
    "MIRROR_ENV",
    "MNIST_MD5",
    "MnistSplit",
    "RING_CENTER",
    "RING_NOISE",
    "RING_RADII",
    "Split",
    "data_root",
    "ensure_mnist",
    "load_mnist",
    "mnist_raw_folder",
    "mnist_split",
    "rings_split",
    "standardize",
    "two_rings",
]
