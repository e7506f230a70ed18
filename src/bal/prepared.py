"""The prepared-folder format: what a prepare stage writes and every learn stage reads.

A prepared dataset is a folder of ``.npy`` arrays plus ``manifest.json`` holding each array's
sha256 and the metadata; :func:`load_prepared` refuses a folder whose files do not match it and
returns model-ready tensors. Besides pool, validation and test, a dataset may hold a *dev* split,
held out of the pool for protocol decisions so that they are never made on the test set, and
*unlabelled* items: the ones a ``suggest`` stage ranks for labelling, and a *target set*: unlabelled
inputs from the test distribution, where it differs from the pool's, for EPIG's targets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bal.errors import DataError
from bal.io import write_json

CHUNK_ELEMENTS = 2**23  # float64 elements (64 MiB) per step when normalising or writing large arrays; it sets the
# normalisation's summation order, so it is the prepared folders' own (a change moves every manifest's mean and std)
ARRAYS = ("pool_x", "pool_y", "val_x", "val_y", "test_x", "test_y")
OPTIONAL_ARRAYS = ("dev_x", "dev_y", "unlabelled_x", "target_x")


@dataclass(frozen=True)
class Split:
    """Model-ready tensors: inputs as float32 (images N x C x H x W, tables N x D), labels as int64."""

    pool_x: torch.Tensor
    pool_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    dev_x: torch.Tensor | None = None  # the dev split, where the dataset has one
    dev_y: torch.Tensor | None = None
    unlabelled_x: torch.Tensor | None = None  # items without a label, for the suggest stage
    target_x: torch.Tensor | None = None  # EPIG's target set, where the test distribution differs from the pool's
    unlabelled_items: tuple[str, ...] = ()  # their file paths or CSV line numbers
    class_names: tuple[str, ...] = ()
    kind: str = "table"  # "image" or "table": what model: auto builds
    copies: int = 1  # Repeated: pool point p is a noisy copy of original p % (pool size / copies)

    def original(self, index_P: torch.Tensor) -> torch.Tensor:
        """The original of each pool point (itself unless the pool holds copies)."""
        return index_P % (len(self.pool_y) // self.copies)

    @property
    def classes(self) -> int:
        return len(self.class_names) or int(max(self.pool_y.max(), self.test_y.max())) + 1


@dataclass
class Prepared:
    """A source's output: ``arrays`` by name (a numpy array, or ``(array, indices)`` to take rows
    from without a copy) and the manifest's metadata."""

    arrays: dict
    kind: str
    class_names: list[str]
    normalise: dict | None = None  # {"mean": [...], "std": [...]} per channel or feature, from the pool
    repeat: dict | None = None  # {"times", "noise_std", "seed"}: load_prepared makes the noisy copies
    unlabelled_items: list[str] = field(default_factory=list)


def _chunks(n: int, x: np.ndarray) -> range:
    """Starts of the row chunks of ``n`` rows shaped like ``x``'s, each at most ``CHUNK_ELEMENTS`` values."""
    return range(0, n, max(1, CHUNK_ELEMENTS // max(1, math.prod(x.shape[1:]))))


def _rows(array) -> np.ndarray:
    """A split array, materialised (``(x, indices)`` -> ``x[indices]``)."""
    return array[0][array[1]] if isinstance(array, tuple) else array


def normalisation(pool) -> dict:
    """Per channel (images) or feature (tables) mean and std of the pool, computed in chunks;
    uint8 images count as x / 255."""
    x, idx = pool if isinstance(pool, tuple) else (pool, np.arange(len(pool)))
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    total, total_sq, count = 0.0, 0.0, 0
    starts = _chunks(len(idx), x)
    for start in starts:
        chunk = x[idx[start : start + starts.step]].astype(np.float64)
        chunk /= 255.0 if x.dtype == np.uint8 else 1.0
        total = total + chunk.sum(axis=axes)
        chunk **= 2
        total_sq = total_sq + chunk.sum(axis=axes)
        count += chunk.size // np.size(total)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**24), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_array(path: Path, array) -> None:
    """One array as .npy; ``(x, indices)`` is written a chunk of rows at a time through the file, never
    copied whole nor memory-mapped (mapped pages would count towards the stage's resident memory)."""
    if not isinstance(array, tuple):
        np.save(path, np.ascontiguousarray(array), allow_pickle=False)
        return
    x, idx = array
    header = {"descr": np.lib.format.dtype_to_descr(x.dtype), "fortran_order": False, "shape": (len(idx), *x.shape[1:])}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        starts = _chunks(len(idx), x)
        for start in starts:
            f.write(np.ascontiguousarray(x[idx[start : start + starts.step]]).data)


def save_prepared(prepared: Prepared | dict, out: Path) -> None:
    """Write the arrays and their manifest to a temporary folder, then rename it to ``out``, so that
    an interrupted prepare never leaves a folder that looks finished. A bare dict of arrays is a
    table dataset with numbered classes."""
    if isinstance(prepared, dict):
        classes = int(max(_rows(prepared["pool_y"]).max(), _rows(prepared["test_y"]).max())) + 1
        prepared = Prepared(prepared, "table", [str(c) for c in range(classes)])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        names = [name for name in ARRAYS + OPTIONAL_ARRAYS if name in prepared.arrays]
        for name in names:
            _save_array(tmp / f"{name}.npy", prepared.arrays[name])
        fields = [f.name for f in dataclasses.fields(prepared) if f.name != "arrays"]  # asdict deep-copies arrays
        meta = {name: getattr(prepared, name) for name in fields}
        manifest = {"sha256": {name: _sha256(tmp / f"{name}.npy") for name in names}, **meta}
        write_json(tmp / "manifest.json", manifest)
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


def _model_ready(array: np.ndarray, normalise: dict | None) -> torch.Tensor:
    """float32 inputs: uint8 images as x / 255, then the pool's mean and std per channel or feature."""
    x = torch.from_numpy(array).float()  # in place from here: one float copy of the array at the peak
    if array.dtype == np.uint8:
        x /= 255.0
    if normalise:
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        x.sub_(torch.tensor(normalise["mean"]).view(shape)).div_(torch.tensor(normalise["std"]).view(shape))
    return x


def load_prepared(folder: Path) -> Split:
    """Read a prepared folder, verify every array against the manifest, return model-ready tensors."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path} is missing; run the prepare stage first (dvc repro).")
    try:
        manifest = json.loads(manifest_path.read_text())
        sha256, repeat = manifest["sha256"], manifest["repeat"]
        kind, class_names, normalise = manifest["kind"], manifest["class_names"], manifest["normalise"]
        items = manifest["unlabelled_items"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{manifest_path} is corrupt or from an older bal; rerun prepare.") from None
    tensors = {}
    for name in ARRAYS + tuple(n for n in OPTIONAL_ARRAYS if n in sha256):
        path = folder / f"{name}.npy"
        if not path.is_file() or _sha256(path) != sha256.get(name):
            raise DataError(f"{path} is missing or does not match its checksum in {manifest_path}; rerun prepare.")
        array = np.load(path, allow_pickle=False)
        tensors[name] = torch.from_numpy(array).long() if name.endswith("_y") else _model_ready(array, normalise)
    if repeat:
        tensors["pool_x"], tensors["pool_y"] = repeat_with_noise(tensors["pool_x"], tensors["pool_y"], **repeat)
        tensors["copies"] = repeat["times"]
    return Split(**tensors, unlabelled_items=tuple(items), class_names=tuple(class_names), kind=kind)
