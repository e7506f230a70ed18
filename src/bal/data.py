"""Datasets: one registry of sources, the pool / validation / dev / test split, prepared folders.

A *source* turns its options (``prepare.<dataset>`` in params.yaml, less ``source``) into a
:class:`Prepared`: the split arrays and what a model needs to know of them (images or a table,
the class names, the pool's normalisation, Repeated-MNIST's copies, unlabelled items). The
sources are ``twomoons``, ``mnist``, ``fashion_mnist`` and ``repeated`` (noisy copies of another
source's pool), and three for your own data: ``image_folder``, ``npz`` and ``csv``.

A prepared dataset is a folder of ``.npy`` arrays plus ``manifest.json`` holding each array's
sha256 and the metadata; :func:`load_prepared` refuses a folder whose files do not match it and
returns model-ready tensors. Besides pool, validation and test, a dataset may hold a *dev* split,
held out of the pool for protocol decisions so that they are never made on the test set, and
*unlabelled* items: the ones a ``suggest`` stage ranks for labelling.
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
from typing import Callable

import numpy as np
import torch

ARRAYS = ("pool_x", "pool_y", "val_x", "val_y", "test_x", "test_y")
OPTIONAL_ARRAYS = ("dev_x", "dev_y", "unlabelled_x")
CHUNK_ELEMENTS = 2**23  # float64 elements (64 MiB) per step when normalising or writing large arrays


class DataError(Exception):
    """A missing, corrupt or inconsistent data file or setting; the message says which and what to do."""


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


# --- splits ----------------------------------------------------------------------------------


def stratified_holdout(y_N: np.ndarray, n: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` indices drawn at random class by class, in proportion to the classes (largest
    remainders get the rounding), and the rest: ``(held_out, rest)``, each sorted."""
    classes, counts = np.unique(y_N, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    held = []
    for c, q in zip(classes, quota):
        of_class = np.flatnonzero(y_N == c)
        held.append(of_class[torch.randperm(len(of_class), generator=generator)[:q].numpy()])
    held_out = np.sort(np.concatenate(held))
    return held_out, np.setdiff1d(np.arange(len(y_N)), held_out)


def split_indices(n: int, n_validation: int, n_dev: int, generator: torch.Generator) -> dict[str, np.ndarray]:
    """Pool, validation and dev positions out of ``n``: one seeded permutation, validation its first
    ``n_validation`` and dev its last ``n_dev``, so that growing one leaves the other unchanged."""
    perm = torch.randperm(n, generator=generator).numpy()
    parts = {"val": perm[:n_validation], "pool": perm[n_validation : n - n_dev], "dev": perm[n - n_dev :]}
    return {name: np.sort(idx) for name, idx in parts.items() if len(idx) or name != "dev"}


def split_arrays(
    x: np.ndarray, y_N: np.ndarray, key: str, n_validation: int, n_dev: int, seed: int,
    test: tuple[np.ndarray, np.ndarray] | None = None, n_test: int = 0,
    rare_classes: list[int] | None = None, rare_keep: float = 1.0,
) -> dict:
    """The split arrays (as ``(x, indices)`` where they are taken from ``x``): a given test set, or
    a class-stratified ``n_test`` held out first; then validation, dev and pool. The pool alone
    keeps only a random ``rare_keep`` of each class in ``rare_classes``."""
    generator = torch.Generator().manual_seed(seed)
    arrays = {}
    rest = np.arange(len(y_N))
    if test is None:
        if n_test >= len(y_N):
            raise DataError(f"{key}.n_test = {n_test}: the source holds only {len(y_N)} labelled items.")
        held_out, rest = stratified_holdout(y_N, n_test, generator)
        arrays["test_x"], arrays["test_y"] = (x, held_out), y_N[held_out]
    else:
        arrays["test_x"], arrays["test_y"] = test
    if n_validation + n_dev >= len(rest):
        raise DataError(f"{key}: n_validation ({n_validation}) and n_dev ({n_dev}) leave no pool of the "
                        f"{len(rest)} labelled items that are not test items.")
    for name, idx in split_indices(len(rest), n_validation, n_dev, generator).items():
        arrays[f"{name}_x"], arrays[f"{name}_y"] = (x, rest[idx]), y_N[rest[idx]]
    if rare_classes:
        pool = arrays["pool_x"][1]
        kept = [pool[y_N[pool] == c] for c in np.unique(y_N) if c not in rare_classes]
        for c in rare_classes:
            of_class = pool[y_N[pool] == c]
            kept.append(of_class[torch.randperm(len(of_class), generator=generator)[: round(rare_keep * len(of_class))].numpy()])
        pool = np.sort(np.concatenate(kept))
        arrays["pool_x"], arrays["pool_y"] = (x, pool), y_N[pool]
    return arrays


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


# --- the sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoMoonsOptions:
    n_pool: int = 1000
    n_validation: int = 100
    n_test: int = 2000
    noise: float = 0.12
    seed: int = 0


@dataclass(frozen=True)
class TorchvisionOptions:
    """MNIST and Fashion-MNIST: the 60,000 training images less validation and dev form the pool;
    the 10,000 test images stay whole."""

    n_validation: int = 100
    n_dev: int = 0
    seed: int = 0
    rare_classes: list[int] | None = None  # an unbalanced pool (the EPIG paper): these classes thinned ...
    rare_keep: float = 1.0  # ... to this fraction of their pool items; validation, dev and test stay balanced


@dataclass(frozen=True)
class RepeatedOptions(TorchvisionOptions):
    """The BatchBALD paper's Repeated-MNIST: the pool of source ``of``, ``repeats`` times, each copy
    with isotropic Gaussian noise of std ``noise_std`` (normalised units); validation, dev, test as ``of``."""

    of: str = "mnist"
    repeats: int = 3
    noise_std: float = 0.1


@dataclass(frozen=True)
class FileOptions:
    """Your own data: a test set the source does not hold is ``n_test`` items held out, class-stratified."""

    path: str
    n_validation: int = 100
    n_test: int = 1000
    n_dev: int = 0
    seed: int = 0


@dataclass(frozen=True)
class ImageFolderOptions(FileOptions):
    channels: int = 1  # 1 (grey) or 3 (RGB)
    size: int | None = None  # resize every image to size x size; None: all must share one size


@dataclass(frozen=True)
class CsvOptions(FileOptions):
    label_column: str = "label"


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


def _two_moons_source(options: TwoMoonsOptions, key: str, context: dict) -> Prepared:
    arrays = prepare_two_moons(options.n_pool, options.n_validation, options.n_test, options.noise, options.seed)
    return Prepared(arrays, "table", ["0", "1"])  # the raw plane: the decision maps draw in its coordinates


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# md5 of each original file's decompressed content: a local copy passes if its .gz matches
# torchvision's md5 or its content matches these. Debian's dataset-fashion-mnist recompressed the
# upstream .gz files (other .gz md5s); these content md5s were read from its files and, for MNIST,
# from the original .gz files that match torchvision's md5s.
CONTENT_MD5 = {
    "train-images-idx3-ubyte": {"mnist": "6bbc9ace898e44ae57da46a324031adb", "fashion_mnist": "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
    "train-labels-idx1-ubyte": {"mnist": "a25bea736e30d166cdddb491f175f624", "fashion_mnist": "9018921c3c673c538a1fc5bad174d6f9"},
    "t10k-images-idx3-ubyte": {"mnist": "2646ac647ad5339dbf082846283269ea", "fashion_mnist": "8181f5470baa50b63fa0f6fddb340f0a"},
    "t10k-labels-idx1-ubyte": {"mnist": "27ae3e4e09519cfbb04c329615203637", "fashion_mnist": "15d484375f8d13e6eb1aabb0c3f46965"},
}


def fetch_torchvision(name: str, root: Path, local_copy: Path | None) -> tuple[np.ndarray, ...]:
    """MNIST or Fashion-MNIST through torchvision as uint8 (train_x, train_y, test_x, test_y), images
    N x 1 x 28 x 28.

    With ``local_copy`` (a folder holding the four original ``.gz`` files) each file is checked
    (its md5 against torchvision's, or its content's against :data:`CONTENT_MD5`) and unpacked into
    torchvision's raw folder, where torchvision finds it. Without it, torchvision downloads and
    checks what is missing.
    """
    import gzip

    from torchvision.datasets import MNIST, FashionMNIST  # only here: keep torchvision off the hot path

    dataset = {"mnist": MNIST, "fashion_mnist": FashionMNIST}[name]
    variable = f"BAL_{name.upper()}_RAW"
    raw = root / dataset.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in dataset.resources if local_copy is not None else ():
        stem = Path(filename).name.removesuffix(".gz")
        source = local_copy / f"{stem}.gz"
        if not source.is_file():
            raise DataError(f"{dataset.__name__} file {source} is missing; {variable} must name a folder with {stem}.gz.")
        try:
            content = gzip.decompress(source.read_bytes())
        except (OSError, EOFError) as err:
            raise DataError(f"{dataset.__name__} file {source} is corrupt ({err}); replace it.") from None
        content_md5 = hashlib.md5(content).hexdigest()
        if _md5(source) != md5 and content_md5 != CONTENT_MD5[stem][name]:
            raise DataError(f"{dataset.__name__} file {source} is corrupt (md5 {_md5(source)}, expected {md5}, or "
                            f"content md5 {CONTENT_MD5[stem][name]}); replace it.")
        (raw / stem).write_bytes(content)
    try:
        train, test = dataset(root, train=True, download=True), dataset(root, train=False, download=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"could not get {dataset.__name__} into {raw} ({err}); offline, set {variable} to a folder "
                        "holding the four original .gz files.") from None
    return train.data[:, None].numpy(), train.targets.numpy(), test.data[:, None].numpy(), test.targets.numpy()


def _torchvision_source(name: str) -> Callable[[TorchvisionOptions, str, dict], Prepared]:
    def build(options: TorchvisionOptions, key: str, context: dict) -> Prepared:
        train_x, train_y, test_x, test_y = fetch_torchvision(name, context["raw_root"], context["local_copies"].get(name))
        arrays = split_arrays(train_x, train_y, key, options.n_validation, options.n_dev, options.seed, (test_x, test_y),
                              rare_classes=options.rare_classes, rare_keep=options.rare_keep)
        classes = [str(c) for c in range(10)] if name == "mnist" else [
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
        return Prepared(arrays, "image", classes, normalisation(arrays["pool_x"]))
    return build


def _repeated_source(options: RepeatedOptions, key: str, context: dict) -> Prepared:
    if options.of not in ("mnist", "fashion_mnist"):
        raise DataError(f"{key}.of = {options.of!r}: repeated copies the pool of mnist or fashion_mnist.")
    base = TorchvisionOptions(**{f.name: getattr(options, f.name) for f in dataclasses.fields(TorchvisionOptions)})
    prepared = SOURCES[options.of].build(base, key, context)
    prepared.repeat = {"times": options.repeats, "noise_std": options.noise_std, "seed": options.seed}
    return prepared


def _check_labels(key: str, pool_y: np.ndarray, test_y: np.ndarray, class_names: list[str], what: str) -> None:
    if len(np.unique(pool_y)) < 2:
        raise DataError(f"{key}: {what} holds only one class ({class_names[int(pool_y[0])]}); active learning needs two or more.")
    unseen = sorted(set(np.unique(test_y).tolist()) - set(np.unique(pool_y).tolist()))
    if unseen:
        raise DataError(f"{key}: the test set has class {class_names[unseen[0]]!r}, which the labelled items never have.")


def _labels(values: list, key: str) -> tuple[np.ndarray, list[str]]:
    """Labels (numbers or names) as class indices in sorted order of the names, and the names."""
    names = sorted({str(v) for v in values}, key=lambda s: (float(s), s) if _is_number(s) else (math.inf, s))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[str(v)] for v in values], dtype=np.int64), names


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _existing(path: str, key: str, folder: bool) -> Path:
    p = Path(path).expanduser()
    if not (p.is_dir() if folder else p.is_file()):
        raise DataError(f"{key}.path = {path!r}: no such {'folder' if folder else 'file'}.")
    return p


# torchvision's ImageFolder extensions, named here because importing torchvision costs a prepare stage
# 170 MB of its 2 GB budget (tests/test_sources.py checks that they agree)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def read_images(files: list[Path], channels: int, size: int | None, key: str) -> np.ndarray:
    """The images as uint8 ``N x channels x H x W``, filled in place (no copy of the whole set)."""
    from PIL import Image, UnidentifiedImageError

    def load(path: Path):
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                return image.resize((size, size), Image.Resampling.BILINEAR) if size else image.copy()
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"{path} is not a readable image ({type(err).__name__}: {err}).") from None

    first = load(files[0])
    width, height = first.size
    out = np.empty((len(files), channels, height, width), dtype=np.uint8)
    for i, path in enumerate(files):
        image = first if i == 0 else load(path)
        if image.size != (width, height):
            raise DataError(f"{path} is {image.size[0]}x{image.size[1]}, but {files[0]} is {width}x{height}; "
                            f"set {key}.size to resize every image to one size.")
        pixels = np.asarray(image, dtype=np.uint8)
        out[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return out


def _image_folder_source(options: ImageFolderOptions, key: str, context: dict) -> Prepared:
    """``path/<class>/*.png|jpg|...`` (torchvision's ImageFolder layout); ``path/test/<class>/`` is the
    test set where it exists; ``path/unlabelled/`` holds the items for the suggest stage."""
    if options.channels not in (1, 3):
        raise DataError(f"{key}.channels = {options.channels}: must be 1 (grey) or 3 (RGB).")
    if options.size is not None and options.size < 1:
        raise DataError(f"{key}.size = {options.size}: must be a positive number of pixels, or null.")
    root = _existing(options.path, key, folder=True)
    reserved = {"test", "unlabelled"}
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in reserved)
    if not class_names:
        raise DataError(f"{key}.path = {options.path!r} has no class subfolders (path/<class name>/<image>).")
    files, labels = [], []
    for i, name in enumerate(class_names):
        found = _image_files(root / name)
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"{key}.path = {options.path!r}: its class folders hold no images.")
    y = np.array(labels, dtype=np.int64)
    x = read_images(files, options.channels, options.size, key)
    test = None
    if (root / "test").is_dir():
        test_names = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
        unknown = sorted(set(test_names) - set(class_names))
        if unknown:
            raise DataError(f"{key}: the test set has class {unknown[0]!r}, which the labelled items never have.")
        test_files, test_labels = [], []
        for name in test_names:
            found = _image_files(root / "test" / name)
            test_files += found
            test_labels += [class_names.index(name)] * len(found)
        if not test_files:
            raise DataError(f"{key}: {root / 'test'} holds no images.")
        test = (read_images(test_files, options.channels, options.size or x.shape[-1], key), np.array(test_labels))
        if test[0].shape[1:] != x.shape[1:]:
            raise DataError(f"{key}: the test images are {test[0].shape[-1]}x{test[0].shape[-2]}, the others "
                            f"{x.shape[-1]}x{x.shape[-2]}; set {key}.size to resize them all.")
    _check_labels(key, y, test[1] if test else y, class_names, "the labelled images")
    arrays = split_arrays(x, y, key, options.n_validation, options.n_dev, options.seed, test, options.n_test)
    items = []
    unlabelled = _image_files(root / "unlabelled") if (root / "unlabelled").is_dir() else []
    if unlabelled:
        arrays["unlabelled_x"] = read_images(unlabelled, options.channels, options.size or x.shape[-1], key)
        items = [str(p.relative_to(root)) for p in unlabelled]
    return Prepared(arrays, "image", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)


def _npz_source(options: FileOptions, key: str, context: dict) -> Prepared:
    """Arrays ``x`` (N x D: a table; N x H x W or N x C x H x W: images) and ``y``, and optionally
    ``x_test`` and ``y_test``."""
    path = _existing(options.path, key, folder=False)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npz file ({err}).") from None
    for name in ("x", "y"):
        if name not in arrays:
            raise DataError(f"{path} has no array {name!r}; it needs x and y (optionally x_test and y_test).")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path} has only one of x_test and y_test; give both or neither.")

    def inputs(x: np.ndarray, name: str) -> np.ndarray:
        if x.ndim not in (2, 3, 4) or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{path}: {name} must be numbers of shape N x D, N x H x W or N x C x H x W, got {x.dtype} {x.shape}.")
        if not np.isfinite(x).all():
            raise DataError(f"{path}: {name} holds NaN or infinite values (first at item {int(np.argwhere(~np.isfinite(x))[0, 0])}).")
        return x[:, None] if x.ndim == 3 else (x if x.dtype == np.uint8 else x.astype(np.float32))

    x = inputs(arrays["x"], "x")
    if len(arrays["y"]) != len(x):
        raise DataError(f"{path}: x has {len(x)} items but y has {len(arrays['y'])}.")
    test = None
    labels = arrays["y"].tolist() + (arrays["y_test"].tolist() if "y_test" in arrays else [])
    codes, class_names = _labels(labels, key)
    y = codes[: len(x)]
    if "x_test" in arrays:
        test = (inputs(arrays["x_test"], "x_test"), codes[len(x) :])
        if test[0].shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_test items have shape {test[0].shape[1:]}, x items {x.shape[1:]}.")
    _check_labels(key, y, test[1] if test else y, class_names, "y")
    split = split_arrays(x, y, key, options.n_validation, options.n_dev, options.seed, test, options.n_test)
    return Prepared(split, "table" if x.ndim == 2 else "image", class_names, normalisation(split["pool_x"]))


def _csv_source(options: CsvOptions, key: str, context: dict) -> Prepared:
    """Numeric feature columns and a label column; rows with an empty label are unlabelled items."""
    import pandas as pd

    path = _existing(options.path, key, folder=False)
    try:
        frame = pd.read_csv(path, dtype={options.label_column: str}, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path} is not a readable CSV file ({err}).") from None
    if options.label_column not in frame:
        raise DataError(f"{path} has no column {options.label_column!r} ({key}.label_column); its columns: "
                        f"{', '.join(map(str, frame.columns))}.")
    features = frame.drop(columns=options.label_column)
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides {options.label_column!r}.")
    numbers = features.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        value = features.iat[row, column]
        raise DataError(f"{path} line {row + 2}, column {features.columns[column]!r}: "
                        f"{'a missing value' if pd.isna(value) else repr(value)} is not a number.")
    x_all = numbers.to_numpy(dtype=np.float32)
    labelled = frame[options.label_column].notna().to_numpy()
    y, class_names = _labels(frame.loc[labelled, options.label_column].tolist(), key)
    x = x_all[labelled]
    _check_labels(key, y, y, class_names, "the labelled rows")
    arrays = split_arrays(x, y, key, options.n_validation, options.n_dev, options.seed, None, options.n_test)
    items = []
    if not labelled.all():
        arrays["unlabelled_x"] = x_all[~labelled]
        items = [f"line {i + 2}" for i in np.flatnonzero(~labelled)]
    return Prepared(arrays, "table", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)


@dataclass(frozen=True)
class Source:
    options: type  # the dataclass of its settings: prepare.<dataset> less ``source``
    build: Callable[..., Prepared]  # (options, key for messages, context) -> Prepared
    files: bool = False  # reads the user's files at ``path``


SOURCES: dict[str, Source] = {
    "twomoons": Source(TwoMoonsOptions, _two_moons_source),
    "mnist": Source(TorchvisionOptions, _torchvision_source("mnist")),
    "fashion_mnist": Source(TorchvisionOptions, _torchvision_source("fashion_mnist")),
    "repeated": Source(RepeatedOptions, _repeated_source),
    "image_folder": Source(ImageFolderOptions, _image_folder_source, files=True),
    "npz": Source(FileOptions, _npz_source, files=True),
    "csv": Source(CsvOptions, _csv_source, files=True),
}


def prepare(source: str, options, key: str, raw_root: Path, local_copies: dict[str, Path | None]) -> Prepared:
    """Build dataset ``key`` (``prepare.<dataset>``) from its source."""
    return SOURCES[source].build(options, key, {"raw_root": raw_root, "local_copies": local_copies})


# --- prepared folders ------------------------------------------------------------------------


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
