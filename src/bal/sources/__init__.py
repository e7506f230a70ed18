"""Data sources: one module per source, discovered from this package.

A module ``bal/sources/<name>.py`` defines ``Options`` (the dataclass of ``prepare.<dataset>``
less ``source``, which checks its own values) and ``build(options, key, context) -> Prepared``:
the split arrays and what a model needs to know of them (images or a table, the class names, the
pool's normalisation, Repeated-MNIST's copies, unlabelled items). Built-in: ``twomoons`` and
``torchvision`` (MNIST and Fashion-MNIST, optionally unbalanced or repeated with noise); for your
own files (``own`` in params.yaml, ``FILES = True``): ``image_folder``, ``npz`` and ``csv``. A
prepare stage depends on this package's base and its own source's module only.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from bal.errors import DataError, require
from bal.prepared import Prepared

# Never ``import csv`` or ``import torchvision`` here: importing the source modules bal.sources.csv and
# bal.sources.torchvision binds those names in this package's namespace, over the libraries.


def names() -> list[str]:
    """Every source name: the modules of this package, found without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> ModuleType:
    """The module of source ``name``."""
    if name not in names():
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(names())}.")
    return importlib.import_module(f"{__name__}.{name}")


def prepare(source: str, options, key: str, raw_root: Path, local_copies: dict[str, Path | None],
            record: dict[str, str] | None = None) -> Prepared:
    """Build dataset ``key`` (``prepare.<dataset>`` or ``own.<dataset>``) from its source. A file source keys
    its splits by item identity: ``record`` holds the split of each item at the last prepare (empty at the
    first), and the source updates it in place (bal.splits.split_by_identity), for the stage to keep."""
    context = {"raw_root": raw_root, "local_copies": local_copies, "record": {} if record is None else record}
    return get(source).build(options, key, context)


def check_counts(options) -> None:
    """The counts and seed every source's options share: ``n_*`` in range, the seed non-negative."""
    for name in ("n_pool", "n_validation", "n_test"):
        if hasattr(options, name):
            require(getattr(options, name) >= 1, name, getattr(options, name), "must be at least 1")
    require(getattr(options, "n_dev", 0) >= 0, "n_dev", getattr(options, "n_dev", 0), "must be non-negative")
    require(options.seed >= 0, "seed", options.seed, "must be non-negative")


@dataclass(frozen=True)
class FileOptions:
    """Your own data: a test set the source does not hold is ``n_test`` items held out, class-stratified."""

    path: str
    n_validation: int = 100
    n_test: int = 1000
    n_dev: int = 0
    seed: int = 0

    def __post_init__(self):
        check_counts(self)


def check_labels(key: str, pool_y: np.ndarray, test_y: np.ndarray, class_names: list[str], what: str) -> None:
    if len(np.unique(pool_y)) < 2:
        raise DataError(f"{key}: {what} holds only one class ({class_names[int(pool_y[0])]}); active learning needs two or more.")
    unseen = sorted(set(np.unique(test_y).tolist()) - set(np.unique(pool_y).tolist()))
    if unseen:
        raise DataError(f"{key}: the test set has class {class_names[unseen[0]]!r}, which the labelled items never have.")


def class_order(names) -> list[str]:
    """Class names in the order every source gives them: numbers by value ("2" before "10"), then text."""
    return sorted(set(names), key=lambda s: (float(s), s) if _is_number(s) else (math.inf, s))


def class_codes(values: list, key: str) -> tuple[np.ndarray, list[str]]:
    """Labels (numbers or names, surrounding spaces ignored) as class indices in :func:`class_order` of the
    names, and the names."""
    labels = [str(v).strip() for v in values]
    names = class_order(labels)
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in labels], dtype=np.int64), names


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def existing(path: str, key: str, folder: bool) -> Path:
    p = Path(path).expanduser()
    if not (p.is_dir() if folder else p.is_file()):
        raise DataError(f"{key}.path = {path!r}: no such {'folder' if folder else 'file'}.")
    return p
