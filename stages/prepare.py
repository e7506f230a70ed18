"""Stage prepare: build one dataset's pool, validation, dev and test arrays from its source.

Offline, BAL_MNIST_RAW and BAL_FASHION_MNIST_RAW name folders holding each dataset's four original
.gz files; without them torchvision downloads the files into --raw-root.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bal.config import load_params
from bal.prepared import save_prepared
from bal.sources import prepare
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(..., help="a dataset of prepare or own"),
    out: Path = typer.Option(..., help="folder to write the prepared arrays to"),
    raw_root: Path = typer.Option(Path("data/raw"), help="where torchvision keeps downloaded files"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    entry = params.dataset(dataset)
    local = {name: Path(os.environ[f"BAL_{name.upper()}_RAW"]) if os.environ.get(f"BAL_{name.upper()}_RAW") else None
             for name in ("mnist", "fashion_mnist")}
    prepared = prepare(entry.source, entry.options, f"{params.datasets()[dataset]}.{dataset}", raw_root, local)
    save_prepared(prepared, out)
    sizes = ", ".join(f"{name} {len(prepared.arrays[f'{name}_y'])}" for name in ("pool", "val", "dev", "test")
                      if f"{name}_y" in prepared.arrays)
    unlabelled = f", {len(prepared.unlabelled_items)} unlabelled" if prepared.unlabelled_items else ""
    typer.echo(f"prepared {dataset} ({entry.source}, {prepared.kind}s, {len(prepared.class_names)} classes) -> {out} "
               f"({sizes}{unlabelled})")


if __name__ == "__main__":
    app()
