"""Stage aggregate: learning curves -> metrics/summary.json, wide CSVs and PNGs per dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from bal.config import load_params
from bal.data import DataError
from bal.io import atomic_write_bytes, write_csv, write_json
from bal.plotting import learning_curves
from bal.results import summarise, wide_table
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    runs: Path = typer.Option(..., help="folder holding <dataset>/<strategy>/<seed>/curve.csv"),
    metrics: Path = typer.Option(..., help="summary JSON to write"),
    plots: Path = typer.Option(..., help="folder for <dataset>.csv and <dataset>.png"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    run = load_params(params_path).run
    summary = {}
    for dataset in run.datasets:
        curves = {}
        for strategy in run.strategies:
            curves[strategy] = {}
            for seed in run.seeds:
                path = runs / dataset / strategy / str(seed) / "curve.csv"
                if not path.is_file():
                    raise DataError(f"{path} is missing; run its learn stage (dvc repro learn@{dataset}-{strategy}-{seed}).")
                curves[strategy][seed] = pd.read_csv(path)
        summary[dataset] = {strategy: summarise(by_seed) for strategy, by_seed in curves.items()}
        write_csv(plots / f"{dataset}.csv", wide_table(curves))
        atomic_write_bytes(plots / f"{dataset}.png", learning_curves(curves, f"{dataset}: test accuracy vs labels"))
    write_json(metrics, summary)
    for dataset, by_strategy in summary.items():
        for strategy, s in by_strategy.items():
            typer.echo(f"{dataset:9} {strategy:17} to 90%: {s['labels_to_90']}  to 95%: {s['labels_to_95']}  "
                       f"final {s['final_accuracy']:.4f} at {s['final_labels']}")


if __name__ == "__main__":
    app()
