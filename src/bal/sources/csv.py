"""Your table in a CSV file: numeric feature columns and a label column; rows with an empty label
are unlabelled items, for the suggest stage."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bal.errors import DataError
from bal.identity import content_ids, digest
from bal.io import atomic_write_bytes
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_codes, class_order, existing
from bal.splits import split_by_identity

FILES = True


@dataclass(frozen=True)
class Options(FileOptions):
    label_column: str = "label"
    id_column: str | None = None  # names each item (in suggestions); None: its line in the file


@dataclass(frozen=True)
class Table:
    """The file's rows, blank lines left out: each row's line in the file, name, features and label."""

    lines: list[int]
    ids: list[str]  # as suggest names the rows: the id_column, or "line N"
    x_N_D: np.ndarray  # float32
    labels: list[str]  # "" where unlabelled


def read_table(options: Options, key: str) -> Table:
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
    return Table(frame.index.tolist(), ids, numbers.to_numpy(dtype=np.float32),
                 frame[options.label_column].fillna("").str.strip().tolist())


def build(options: Options, key: str, context: dict) -> Prepared:
    """Numeric feature columns and a label column; rows with an empty label are unlabelled items, named
    by ``id_column`` or by their line in the file (blank lines counted)."""
    table = read_table(options, key)
    x_all = table.x_N_D
    # without an id column a row is its features, so that labelling it keeps it the same item
    identities = table.ids if options.id_column is not None else content_ids(row.tobytes() for row in x_all)
    labelled = np.array([label != "" for label in table.labels])
    y, class_names = class_codes([label for label in table.labels if label], key)
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
        items = [item for item, known in zip(table.ids, labelled) if not known]
    return Prepared(arrays, "table", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)


def _cell_spans(line: str) -> list[tuple[int, int]]:
    """Where each comma-separated cell of one CSV line starts and ends (quotes respected, line ending excluded)."""
    end = len(line.rstrip("\r\n"))
    spans, start, quoted = [], 0, False
    for i, char in enumerate(line[:end]):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            spans.append((start, i))
            start = i + 1
    return spans + [(start, end)]


def apply_labels(options: Options, key: str, labels: dict[str, str], suggested: dict[str, set[str]]) -> list[str]:
    """Fill in the label cells of unlabelled rows, each named as suggest names it (its ``id_column``, or
    ``line N``); the items labelled. ``suggested``: each item bal ever suggested, with the digests
    (bal.identity) of the contents it had then. Only the label cells change, in one rename of the file.
    A row already holding its label stays (so applying twice changes nothing); a label the file holds
    nowhere, an item bal never suggested, a row whose features changed since, or a row labelled otherwise
    is refused, and nothing changes."""
    table = read_table(options, key)
    path = Path(options.path).expanduser()
    at = {item: i for i, item in enumerate(table.ids)}
    classes = set(table.labels) - {""}
    text = path.read_bytes().decode("utf-8")
    lines = io.StringIO(text, newline="").readlines()  # split as pandas splits, line endings kept
    header = next(csv.reader([lines[0].removeprefix("\ufeff")]))
    label_at = header.index(options.label_column)
    changed = []
    for item, label in sorted(labels.items()):
        if label not in classes:
            raise DataError(f"{key}: {item} is labelled {label!r}, which no row of {path} holds "
                            f"({', '.join(class_order(classes))}); nothing was applied.")
        if item not in suggested:
            raise DataError(f"{key}: bal never suggested {item} (it is in no round of the suggestions' history); "
                            "nothing was applied.")
        i = at.get(item)
        if i is None or digest(table.x_N_D[i].tobytes()) not in suggested[item]:
            raise DataError(f"{key}: {item} of {path} is " + ("not there any more" if i is None else
                            "another row than bal suggested (its features differ)") + "; nothing was applied.")
        current = table.labels[i]
        if current == label:
            continue
        if current:
            raise DataError(f"{key}: {item} is labelled {current!r} already, and bal never changes a label; "
                            "nothing was applied.")
        line = lines[table.lines[i] - 1]
        spans = _cell_spans(line)
        if label_at < len(spans):
            (start, end), cell = spans[label_at], _quoted(label)
        else:  # a short row: its missing cells, then the label
            start = end = spans[-1][1]
            cell = "," * (label_at + 1 - len(spans)) + _quoted(label)
        lines[table.lines[i] - 1] = line[:start] + cell + line[end:]
        changed.append(item)
    if changed:
        mode = path.stat().st_mode
        atomic_write_bytes(path, "".join(lines).encode("utf-8"))
        path.chmod(mode)  # the user's own permissions, not the 0644 of a new file
    return changed


def _quoted(value: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([value])
    return out.getvalue()
