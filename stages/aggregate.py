"""Stages aggregate and compare: a grid's learning curves -> a summary JSON (with paired comparisons
against random and BALD, and the acquired points per class) and one CSV per dataset for `dvc plots`.

aggregate summarises the replication grids (run, survey and shift) into metrics/summary.json; compare@<dataset>
one dataset of your own data's grid (simulate).
"""

from __future__ import annotations

from pathlib import Path

import typer

from bal.config import GRIDS, load_params
from bal.errors import ConfigError
from bal.io import write_csv, write_json
from bal.results import (STAGES, acquired_per_class, evaluated_split, long_table, paired_comparisons, read_runs,
                         summarise)
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    runs: Path = typer.Option(..., help="folder holding <dataset>/<strategy>/<seed>/curve.csv"),
    metrics: Path = typer.Option(..., help="summary JSON to write"),
    plots: Path = typer.Option(..., help="folder for <dataset>.csv"),
    grid_names: list[str] = typer.Option(list(GRIDS), "--grid", help="the grids of params.yaml to summarise"),
    only: str | None = typer.Option(None, "--dataset", help="one dataset of those grids alone"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    grids = params.every_grid()
    for name in grid_names:
        if name not in STAGES:
            raise ConfigError(f"--grid {name!r} is not a grid of learn runs; grids: {', '.join(STAGES)}.")
    if only is not None and not any(only in grids[name].datasets for name in grid_names):
        raise ConfigError(f"--dataset {only!r} is in none of the {' and '.join(grid_names)} grids' datasets.")
    summary = {}
    for group in grid_names:
        grid = grids[group]
        for dataset in [d for d in grid.datasets if only in (None, d)]:
            curves = read_runs(runs, dataset, grid.strategies, grid.seeds, "curve.csv", missing_ok=True, group=STAGES[group])
            if not curves:
                continue
            column = params.report.column(evaluated_split(curves))
            comparisons = paired_comparisons(curves, column)
            acquired = read_runs(runs, dataset, grid.strategies, grid.seeds, "acquired.csv", missing_ok=True, group=STAGES[group])
            classes = 1 + max(int(t.label.max()) for by_seed in acquired.values() for t in by_seed.values() if len(t))
            summary[dataset] = {strategy: {**summarise(by_seed, column), **comparisons[strategy],
                                           "acquired_per_class": acquired_per_class(acquired[strategy], classes)}
                                for strategy, by_seed in curves.items()}
            write_csv(plots / f"{dataset}.csv", long_table(curves, column))
    write_json(metrics, summary)
    for dataset, by_strategy in summary.items():
        for strategy, s in by_strategy.items():
            typer.echo(f"{dataset:16} {strategy:17} to 90%: {s['labels_to_90']}  to 95%: {s['labels_to_95']}  "
                       f"final {s['final_accuracy']:.4f} at {s['final_labels']} ({len(s['seeds'])} seeds)")


if __name__ == "__main__":
    app()
