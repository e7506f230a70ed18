"""Stage prepare: build one dataset's pool, validation, dev and test arrays from its source.

Offline, BAL_MNIST_RAW and BAL_FASHION_MNIST_RAW name folders holding each dataset's four original
.gz files; without them torchvision downloads the files into --raw-root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import typer

from bal.config import load_params
from bal.errors import DataError
from bal.io import write_csv
from bal.prepared import save_prepared
from bal.sources import prepare
from common import fails_cleanly

app = typer.Typer(add_completion=False)
SPLITS = ("pool", "val", "dev", "test")


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(..., help="a dataset of prepare or own"),
    out: Path = typer.Option(..., help="folder to write the prepared arrays to"),
    raw_root: Path = typer.Option(Path("data/raw"), help="where torchvision keeps downloaded files"),
    record: Path | None = typer.Option(None, help="your own data: each item's split, kept from one prepare to the next"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    entry = params.dataset(dataset)
    path = getattr(entry.options, "path", None)
    if path is not None and not Path(path).expanduser().resolve().is_relative_to(Path("data/sources").resolve()):
        typer.echo(f"warning: {params.datasets()[dataset]}.{dataset}.path = {path!r} is outside data/sources, so DVC "
                   "will not version its labels (dvc add data/sources/<name> does).", err=True)
    local = {name: Path(os.environ[f"BAL_{name.upper()}_RAW"]) if os.environ.get(f"BAL_{name.upper()}_RAW") else None
             for name in ("mnist", "fashion_mnist")}
    assigned = {}
    if record is not None and record.is_file():
        try:
            table = pd.read_csv(record, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError):
            table = pd.DataFrame()
        if (list(table.columns) != ["item", "split"] or not table.split.isin(SPLITS).all()
                or table.item.duplicated().any()):
            raise DataError(f"{record} must have the columns item and split (one of {', '.join(SPLITS)}), each item "
                            "once; restore it from git, where it is kept.")
        assigned = dict(zip(table["item"], table["split"]))
    prepared = prepare(entry.source, entry.options, f"{params.datasets()[dataset]}.{dataset}", raw_root, local, assigned)
    save_prepared(prepared, out)
    if record is not None:
        write_csv(record, pd.DataFrame(sorted(assigned.items()), columns=["item", "split"]))
    sizes = ", ".join(f"{name} {len(prepared.arrays[f'{name}_y'])}" for name in ("pool", "val", "dev", "test")
                      if f"{name}_y" in prepared.arrays)
    unlabelled = f", {len(prepared.unlabelled_items)} unlabelled" if prepared.unlabelled_items else ""
    typer.echo(f"prepared {dataset} ({entry.source}, {prepared.kind}s, {len(prepared.class_names)} classes) -> {out} "
               f"({sizes}{unlabelled})")


if __name__ == "__main__":
    app()
