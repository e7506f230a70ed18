"""Stage study_summary: the curves of the study grids (study and single) -> metrics/study.json and one figure
per dataset.

On a repeated pool (Repeated-MNIST) it also records ``copies_acquired``: the fraction of acquired points that were a
copy of an original already acquired (mean over seeds), the redundancy BatchBALD exists to avoid. For
BatchBALD it records where its batches reached the log K ceiling of a joint mutual information.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import typer

from bal import strategies
from bal.config import load_params
from bal.prepared import load_prepared
from bal.io import atomic_write_bytes, write_json
from bal.plotting import curves_by_size, render
from bal.results import BATCHBALD_2019, ceiling_picks, copies_acquired, evaluated_split, read_runs, summarise
from common import fails_cleanly

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    runs: Path = typer.Option(..., help="folder holding <dataset>/<strategy>/b<size>/<seed>/curve.csv"),
    metrics: Path = typer.Option(..., help="summary JSON to write"),
    plots: Path = typer.Option(..., help="folder for <dataset>_curves.png and .svg"),
    prepared: Path = typer.Option(..., help="folder holding the prepared <dataset> folders"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    summary = {}
    for name, study, dataset in [(name, study, d) for name, study in params.studies().items() for d in study.datasets]:
        grid = (runs, dataset, study.strategies, study.seeds)
        panels = {size: read_runs(*grid, "curve.csv", size, missing_ok=True, group=name) for size in study.acquisition_sizes}
        column = params.report.column(evaluated_split(*panels.values()))
        summary[dataset] = {f"b{size}": {strategy: summarise(by_seed, column) for strategy, by_seed in curves.items()}
                            for size, curves in panels.items()}
        split = load_prepared(prepared / dataset)
        n_originals = len(split.pool_y) // split.copies
        for size in study.acquisition_sizes:
            for strategy, by_seed in read_runs(*grid, "acquired.csv", size, missing_ok=True, group=name).items():
                entry = summary[dataset][f"b{size}"][strategy]
                if split.copies > 1:
                    entry["copies_acquired"] = statistics.fmean(copies_acquired(t, n_originals) for t in by_seed.values())
                if strategies.get(strategy).joint_scores:
                    entry.update(ceiling_picks(list(by_seed.values())))
            for strategy, by_seed in panels[size].items():  # what a run costs: its rounds' timings, summed
                summary[dataset][f"b{size}"][strategy]["seconds"] = statistics.fmean(
                    c.filter(like="_seconds").to_numpy().sum() for c in by_seed.values())
        references = BATCHBALD_2019 if dataset in params.report.papers else None
        title = f"{dataset}: test accuracy vs labelled samples" + (" (hollow: BatchBALD paper)" if references else "")
        for fmt, data in render(curves_by_size(panels, title, references, (60, 100), column)).items():
            atomic_write_bytes(plots / f"{dataset}_curves.{fmt}", data)
    write_json(metrics, summary)
    for dataset, by_size in summary.items():
        for size, by_strategy in by_size.items():
            for strategy, s in by_strategy.items():
                typer.echo(f"{dataset:15} {size:>4} {strategy:11} to 90%: {s['labels_to_90']}  "
                           f"to 95%: {s['labels_to_95']}  final {s['final_accuracy']:.4f} at {s['final_labels']}")


if __name__ == "__main__":
    app()
