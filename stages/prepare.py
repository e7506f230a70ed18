"""Stage prepare: build one dataset's pool, validation and test arrays."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from bal.config import load_params
from bal.data import fetch_mnist, prepare_mnist, prepare_two_moons, save_prepared
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(..., help="twomoons, mnist or repeated_mnist"),
    out: Path = typer.Option(..., help="folder to write the prepared arrays to"),
    raw_root: Path = typer.Option(Path("data/raw"), help="where torchvision keeps downloaded files"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    """Prepare DATASET. Offline, set BAL_MNIST_RAW to a folder holding MNIST's four original .gz files."""
    params = load_params(params_path)
    repeat = None
    if dataset == "twomoons":
        p = params.prepare.twomoons
        arrays = prepare_two_moons(p.n_pool, p.n_validation, p.n_test, p.noise, p.seed)
    elif dataset in ("mnist", "repeated_mnist"):
        p = getattr(params.prepare, dataset)
        local_copy = os.environ.get("BAL_MNIST_RAW")
        raw = fetch_mnist(raw_root, Path(local_copy) if local_copy else None)
        arrays = prepare_mnist(*raw, p.n_validation, p.seed, p.n_dev)
        if dataset == "repeated_mnist":
            repeat = {"times": p.repeats, "noise_std": p.noise_std, "seed": p.seed}
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: twomoons, mnist, repeated_mnist.")
    save_prepared(arrays, out, repeat)
    sizes = ", ".join(f"{name} {len(arrays[name])}" for name in ("pool_y", "val_y", "dev_y", "test_y") if name in arrays)
    typer.echo(f"prepared {dataset} -> {out} ({sizes})")


if __name__ == "__main__":
    app()
