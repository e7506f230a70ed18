"""Stage prepare: build one dataset's pool, validation, dev and test arrays from its source.

Offline, BAL_MNIST_RAW and BAL_FASHION_MNIST_RAW name folders holding each dataset's four original
.gz files; without them torchvision downloads the files into --raw-root.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bal.config import ConfigError, load_params
from bal.data import load_prepared, prepare, save_prepared
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(..., help="a name in prepare.datasets"),
    out: Path = typer.Option(..., help="folder to write the prepared arrays to"),
    raw_root: Path = typer.Option(Path("data/raw"), help="where torchvision keeps downloaded files"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    if dataset not in params.prepare.entries:
        raise ConfigError(f"--dataset {dataset!r} is not in prepare.datasets ({', '.join(params.prepare.datasets)}).")
    entry = params.prepare.entries[dataset]
    local = {name: Path(os.environ[f"BAL_{name.upper()}_RAW"]) if os.environ.get(f"BAL_{name.upper()}_RAW") else None
             for name in ("mnist", "fashion_mnist")}
    save_prepared(prepare(entry.source, entry.options, f"prepare.{dataset}", raw_root, local), out)
    split = load_prepared(out)
    sizes = ", ".join(f"{name} {len(getattr(split, name))}" for name in ("pool_y", "val_y", "dev_y", "test_y")
                      if getattr(split, name) is not None)
    unlabelled = f", {len(split.unlabelled_items)} unlabelled" if split.unlabelled_items else ""
    typer.echo(f"prepared {dataset} ({entry.source}, {split.kind}s, {split.classes} classes) -> {out} ({sizes}{unlabelled})")


if __name__ == "__main__":
    app()
