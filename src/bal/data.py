"""Datasets as tensors, the pool / validation / test split, and the initial labelled set.

A prepared dataset is a folder of ``.npy`` arrays plus ``manifest.json`` holding each
array's sha256 (and, for Repeated-MNIST, how to repeat the pool); :func:`load_prepared`
refuses a folder whose files do not match it. Besides pool, validation and test, a dataset may
hold a *dev* split: held out of the pool for protocol decisions, so that they are never made on
the test set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ARRAYS = ("pool_x", "pool_y", "val_x", "val_y", "test_x", "test_y")
OPTIONAL_ARRAYS = ("dev_x", "dev_y")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class DataError(Exception):
    """A missing, corrupt or inconsistent data file; the message says which and what to do."""


@dataclass(frozen=True)
class Split:
    """Model-ready tensors: inputs as float32, labels as int64."""

    pool_x: torch.Tensor
    pool_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    dev_x: torch.Tensor | None = None  # the dev split, where the dataset has one
    dev_y: torch.Tensor | None = None
    copies: int = 1  # Repeated-MNIST: pool point p is a noisy copy of original p % (pool size / copies)

    def original(self, index_P: torch.Tensor) -> torch.Tensor:
        """The original of each pool point (itself unless the pool holds copies)."""
        return index_P % (len(self.pool_y) // self.copies)

    @property
    def classes(self) -> int:
        return int(max(self.pool_y.max(), self.test_y.max())) + 1


# --- TwoMoons -----------------------------------------------------------------------------


def two_moons(n: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of two interleaving half circles with Gaussian noise: (x_N_2, y_N)."""
    y_N = torch.arange(n) % 2
    t_N = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper_N_2 = torch.stack([torch.cos(t_N), torch.sin(t_N)], dim=1)
    lower_N_2 = torch.stack([1.0 - torch.cos(t_N), 0.5 - torch.sin(t_N)], dim=1)
    x_N_2 = torch.where(y_N[:, None] == 0, upper_N_2, lower_N_2)
    x_N_2 = x_N_2 + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x_N_2.float(), y_N


def prepare_two_moons(n_pool: int, n_validation: int, n_test: int, noise: float, seed: int) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    x, y = two_moons(n_pool + n_validation + n_test, noise, generator)
    pieces = torch.split(torch.randperm(len(y), generator=generator), [n_pool, n_validation, n_test])
    arrays = {}
    for name, idx in zip(("pool", "val", "test"), pieces):
        arrays[f"{name}_x"], arrays[f"{name}_y"] = x[idx].numpy(), y[idx].numpy()
    return arrays


# --- MNIST --------------------------------------------------------------------------------


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fetch_mnist(root: Path, local_copy: Path | None) -> tuple[torch.Tensor, ...]:
    """MNIST through torchvision as uint8 (train_x, train_y, test_x, test_y).

    With ``local_copy`` (a folder holding the four original ``.gz`` files) the files are
    checked against torchvision's md5s and copied into ``root/MNIST/raw``; torchvision then
    only verifies and unpacks. Without it, torchvision downloads what is missing.
    """
    from torchvision.datasets import MNIST  # only here: keep torchvision off the hot path

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in MNIST.resources:
        filename = Path(filename).name
        source = local_copy / filename if local_copy is not None else raw / filename
        if local_copy is not None and not source.is_file():
            raise DataError(f"MNIST file {source} is missing; BAL_MNIST_RAW must name a folder with {filename}.")
        if source.is_file() and _md5(source) != md5:
            raise DataError(f"MNIST file {source} is corrupt (md5 {_md5(source)}, expected {md5}); replace it.")
        if source != raw / filename:
            shutil.copyfile(source, raw / filename)
    try:
        train, test = MNIST(root, train=True, download=True), MNIST(root, train=False, download=True)
    except (OSError, RuntimeError) as err:
        raise DataError(
            f"could not get MNIST into {raw} ({err}); offline, set BAL_MNIST_RAW to a folder holding the four original .gz files."
        ) from None
    return train.data, train.targets, test.data, test.targets


def prepare_mnist(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, n_validation: int,
    seed: int, n_dev: int = 0,
) -> dict[str, np.ndarray]:
    """Split MNIST's training set into a pool, a random validation set and a random dev set; the
    test set stays whole.

    One seeded permutation: validation is its first ``n_validation`` images and dev its last
    ``n_dev``, so that growing one leaves the other unchanged.
    """
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train_y), generator=generator)
    val_idx, pool_idx, dev_idx = torch.split(perm, [n_validation, len(perm) - n_validation - n_dev, n_dev])
    arrays = {"test_x": test_x.numpy(), "test_y": test_y.numpy()}
    for name, idx in (("pool", pool_idx), ("val", val_idx), ("dev", dev_idx)):
        idx = idx.sort().values
        arrays[f"{name}_x"], arrays[f"{name}_y"] = train_x[idx].numpy(), train_y[idx].numpy()
    if not n_dev:
        del arrays["dev_x"], arrays["dev_y"]
    return arrays


# --- prepared folders ---------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_prepared(arrays: dict[str, np.ndarray], out: Path, repeat: dict | None = None) -> None:
    """Write the arrays and their manifest to a temporary folder, then rename it to ``out``.

    ``repeat`` ({"times", "noise_std", "seed"}) makes :func:`load_prepared` build Repeated-MNIST.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        names = [name for name in ARRAYS + OPTIONAL_ARRAYS if name in arrays]
        for name in names:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
        manifest = {"sha256": {name: _sha256(tmp / f"{name}.npy") for name in names}, "repeat": repeat}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def repeat_with_noise(x_N: torch.Tensor, y_N: torch.Tensor, times: int, noise_std: float, seed: int):
    """Repeated-MNIST (Kirsch et al. 2019): every pool point ``times`` times, each copy with
    isotropic Gaussian noise of std ``noise_std`` added to the normalised image."""
    generator = torch.Generator().manual_seed(seed)
    x = x_N.repeat(times, *[1] * (x_N.ndim - 1))
    return x + noise_std * torch.randn(x.shape, generator=generator), y_N.repeat(times)


def load_prepared(folder: Path) -> Split:
    """Read a prepared folder, verify every array against the manifest, return model-ready tensors."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path} is missing; run the prepare stage first (dvc repro).")
    try:
        manifest = json.loads(manifest_path.read_text())
        sha256, repeat = manifest["sha256"], manifest["repeat"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{manifest_path} is corrupt; rerun prepare.") from None
    tensors = {}
    for name in ARRAYS + tuple(n for n in OPTIONAL_ARRAYS if n in sha256):
        path = folder / f"{name}.npy"
        if not path.is_file() or _sha256(path) != sha256.get(name):
            raise DataError(f"{path} is missing or does not match its checksum in {manifest_path}; rerun prepare.")
        array = torch.from_numpy(np.load(path, allow_pickle=False))
        if name.endswith("_y"):
            tensors[name] = array.long()
        elif array.dtype == torch.uint8:
            tensors[name] = ((array.float() / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None]
        else:
            tensors[name] = array.float()
    if repeat:
        tensors["pool_x"], tensors["pool_y"] = repeat_with_noise(tensors["pool_x"], tensors["pool_y"], **repeat)
        tensors["copies"] = repeat["times"]
    return Split(**tensors)


def initial_indices(pool_y: torch.Tensor, per_class: int, seed: int) -> list[int]:
    """A class-balanced random labelled set, ``per_class`` points of each class; depends only on the seed."""
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(pool_y), generator=generator)
    chosen = []
    for c in range(int(pool_y.max()) + 1):
        of_class = perm[pool_y[perm] == c]
        if len(of_class) < per_class:
            raise DataError(f"class {c} has only {len(of_class)} pool points, fewer than initial_per_class={per_class}.")
        chosen += of_class[:per_class].tolist()
    return chosen
