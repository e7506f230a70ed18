"""Your arrays in one ``.npz`` file: ``x`` (N x D: a table; N x H x W or N x C x H x W: images) and
``y``, optionally ``x_test`` and ``y_test``."""

from __future__ import annotations

import numpy as np

from bal.errors import DataError
from bal.identity import content_ids
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_codes, existing
from bal.splits import split_by_identity

FILES = True
Options = FileOptions


def build(options: Options, key: str, context: dict) -> Prepared:
    """Arrays ``x`` (N x D: a table; N x H x W, N x C x H x W or N x H x W x C with C = 1 or 3: images) and
    ``y``; optionally ``x_test`` and ``y_test``, and ``x_unlabelled`` (items for the suggest stage, named
    by ``ids_unlabelled`` where given, else by their position). The splits are kept by item identity: ``ids``
    where given, else each item's content (bal.identity)."""
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
        if x.ndim == 4 and x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):  # channels last, as PIL and Keras
            x = x.transpose(0, 3, 1, 2)
        if x.ndim == 4 and x.shape[1] not in (1, 3):
            raise DataError(f"{path}: {name} images of shape {x.shape} have neither 1 nor 3 channels on the first or the "
                            "last axis; images need 1 (grey) or 3 (RGB) channels (drop an alpha channel).")
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
    ids = [str(i) for i in arrays["ids"].tolist()] if "ids" in arrays else content_ids(item.tobytes() for item in x)
    if len(ids) != len(x):
        raise DataError(f"{path}: ids names {len(ids)} items, x holds {len(x)}.")
    record = context["record"]
    split, assigned = split_by_identity(x, y, ids, record or None, key, options.n_validation, options.n_dev,
                                        options.seed, test, options.n_test)
    record.update(assigned)
    items = []
    if "x_unlabelled" in arrays:
        split["unlabelled_x"] = inputs(arrays["x_unlabelled"], "x_unlabelled")
        if split["unlabelled_x"].shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_unlabelled items have shape {split['unlabelled_x'].shape[1:]}, x items {x.shape[1:]}.")
        ids = arrays.get("ids_unlabelled", np.array([f"x_unlabelled[{i}]" for i in range(len(split["unlabelled_x"]))]))
        items = [str(item) for item in ids.tolist()]
        if len(items) != len(split["unlabelled_x"]) or len(set(items)) != len(items):
            raise DataError(f"{path}: ids_unlabelled must name each of the {len(split['unlabelled_x'])} x_unlabelled "
                            "items once.")
    return Prepared(split, "table" if x.ndim == 2 else "image", class_names, normalisation(split["pool_x"]),
                    unlabelled_items=items)
