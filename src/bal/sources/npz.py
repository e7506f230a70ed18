"""Your arrays in one ``.npz`` file: ``x`` (N x D: a table; N x H x W or N x C x H x W: images) and
``y``, optionally ``x_test`` and ``y_test``."""

from __future__ import annotations

import numpy as np

from bal.errors import DataError
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_codes, existing
from bal.splits import split_arrays

FILES = True
Options = FileOptions


def build(options: Options, key: str, context: dict) -> Prepared:
    """Arrays ``x`` (N x D: a table; N x H x W or N x C x H x W: images) and ``y``, and optionally
    ``x_test`` and ``y_test``."""
    path = existing(options.path, key, folder=False)
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
    codes, class_names = class_codes(labels, key)
    y = codes[: len(x)]
    if "x_test" in arrays:
        test = (inputs(arrays["x_test"], "x_test"), codes[len(x) :])
        if test[0].shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_test items have shape {test[0].shape[1:]}, x items {x.shape[1:]}.")
    check_labels(key, y, test[1] if test else y, class_names, "y")
    split = split_arrays(x, y, key, options.n_validation, options.n_dev, options.seed, test, options.n_test)
    return Prepared(split, "table" if x.ndim == 2 else "image", class_names, normalisation(split["pool_x"]))
