"""Your table in a CSV file: numeric feature columns and a label column; rows with an empty label
are unlabelled items, for the suggest stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bal.errors import DataError
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_codes, existing
from bal.splits import split_arrays

FILES = True


@dataclass(frozen=True)
class Options(FileOptions):
    label_column: str = "label"


def build(options: Options, key: str, context: dict) -> Prepared:
    """Numeric feature columns and a label column; rows with an empty label are unlabelled items."""
    import pandas as pd

    path = existing(options.path, key, folder=False)
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
    y, class_names = class_codes(frame.loc[labelled, options.label_column].tolist(), key)
    x = x_all[labelled]
    check_labels(key, y, y, class_names, "the labelled rows")
    arrays = split_arrays(x, y, key, options.n_validation, options.n_dev, options.seed, None, options.n_test)
    items = []
    if not labelled.all():
        arrays["unlabelled_x"] = x_all[~labelled]
        items = [f"line {i + 2}" for i in np.flatnonzero(~labelled)]
    return Prepared(arrays, "table", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)
