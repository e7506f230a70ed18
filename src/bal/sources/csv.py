"""Your table in a CSV file: numeric feature columns and a label column; rows with an empty label
are unlabelled items, for the suggest stage."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from bal.errors import DataError
from bal.identity import content_ids
from bal.io import atomic_write_bytes
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_codes, class_order, existing
from bal.splits import split_by_identity

FILES = True


@dataclass(frozen=True)
class Options(FileOptions):
    label_column: str = "label"
    id_column: str | None = None  # names each item (in suggestions); None: its line in the file


def build(options: Options, key: str, context: dict) -> Prepared:
    """Numeric feature columns and a label column; rows with an empty label are unlabelled items, named
    by ``id_column`` or by their line in the file (blank lines counted)."""
    import pandas as pd

    path = existing(options.path, key, folder=False)
    text_columns = {c: str for c in (options.label_column, options.id_column) if c}
    try:
        frame = pd.read_csv(path, dtype=text_columns, keep_default_na=False, na_values=[""], skip_blank_lines=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path} is not a readable CSV file ({err}).") from None
    frame.index += 2  # each row's line in the file: the header is line 1, and blank lines were kept ...
    frame = frame.dropna(how="all")  # ... to be dropped here
    for column, what in ((options.label_column, "label_column"), (options.id_column, "id_column")):
        if column is not None and column not in frame:
            raise DataError(f"{path} has no column {column!r} ({key}.{what}); its columns: "
                            f"{', '.join(map(str, frame.columns))}.")
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ") and c != options.id_column]
    if unnamed:
        raise DataError(f"{path} has a column without a name (pandas writes its index so); drop it, or name it and "
                        f"set {key}.id_column.")
    features = frame.drop(columns=[c for c in (options.label_column, options.id_column) if c])
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides {options.label_column!r}.")
    numbers = features.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        value = features.iat[row, column]
        raise DataError(f"{path} line {features.index[row]}, column {features.columns[column]!r}: "
                        f"{'a missing value' if pd.isna(value) else repr(value)} is not a number.")
    ids = [f"line {line}" for line in frame.index]
    if options.id_column is not None:
        ids = frame[options.id_column].fillna("").str.strip().tolist()
        seen: dict[str, int] = {}
        for line, item in zip(frame.index, ids):
            if not item or item in seen:
                where = f"line {line}" if not item else f"lines {seen[item]} and {line}"
                raise DataError(f"{path}: {key}.id_column {options.id_column!r} "
                                + (f"is empty at {where}" if not item else f"repeats {item!r} ({where})")
                                + "; each item needs its own id.")
            seen[item] = line
    x_all = numbers.to_numpy(dtype=np.float32)
    # without an id column a row is its features, so that labelling it keeps it the same item
    identities = ids if options.id_column is not None else content_ids(row.tobytes() for row in x_all)
    labels = frame[options.label_column].fillna("").str.strip()
    labelled = (labels != "").to_numpy()
    y, class_names = class_codes(labels[labelled].tolist(), key)
    x = x_all[labelled]
    check_labels(key, y, y, class_names, "the labelled rows")
    record = context["record"]
    arrays, assigned = split_by_identity(x, y, [item for item, known in zip(identities, labelled) if known],
                                         record or None, key, options.n_validation, options.n_dev, options.seed, None,
                                         options.n_test)
    record.update(assigned)
    items = []
    if not labelled.all():
        arrays["unlabelled_x"] = x_all[~labelled]
        items = [item for item, known in zip(ids, labelled) if not known]
    return Prepared(arrays, "table", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)


def apply_labels(options: Options, key: str, labels: dict[str, str], suggested: set[str]) -> list[str]:
    """Fill in the label cells of unlabelled rows, each named as suggest names it (its ``id_column``, or
    ``line N``); the items labelled. The file is rewritten in one rename, every other line byte for byte.
    A row already holding its label stays (so applying twice changes nothing); a label the file holds
    nowhere, an item not in ``suggested`` or not a row, or a row labelled otherwise is refused, and nothing
    changes."""
    path = existing(options.path, key, folder=False)
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)  # line endings as they are
    header = next(csv.reader(lines[:1]), [])
    if options.label_column not in header or (options.id_column is not None and options.id_column not in header):
        raise DataError(f"{path} has no column {options.label_column!r} ({key}.label_column) or its id_column.")
    label_at = header.index(options.label_column)
    rows = {number: next(csv.reader([line])) for number, line in enumerate(lines[1:], start=2) if line.strip()}
    cell = lambda fields, at: fields[at].strip() if at < len(fields) else ""  # noqa: E731
    named = {cell(fields, header.index(options.id_column)) if options.id_column else f"line {number}": number
             for number, fields in rows.items()}
    classes = {cell(fields, label_at) for fields in rows.values()} - {""}
    changed = []
    for item, label in sorted(labels.items()):
        if label not in classes:
            raise DataError(f"{key}: {item} is labelled {label!r}, which no row of {path} holds "
                            f"({', '.join(class_order(classes))}); nothing was applied.")
        if item not in named:
            raise DataError(f"{key}: {item!r} is no row of {path}, so bal never suggested it; nothing was applied.")
        number = named[item]
        fields, current = rows[number], cell(rows[number], label_at)
        if current == label:
            continue
        if item not in suggested:
            raise DataError(f"{key}: bal never suggested {item} (it is not among the suggestions); nothing was applied.")
        if current:
            raise DataError(f"{key}: {item} is labelled {current!r} already, and bal never changes a label; "
                            "nothing was applied.")
        fields += [""] * (label_at + 1 - len(fields))
        fields[label_at] = label
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(fields)
        line = lines[number - 1]
        lines[number - 1] = out.getvalue() + line[len(line.rstrip("\r\n")):]
        changed.append(item)
    if changed:
        atomic_write_bytes(path, "".join(lines).encode("utf-8"))
    return changed
