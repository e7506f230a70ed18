"""Stage figures: learning curves, TwoMoons decision maps and BALD's terms, acquired classes.

TwoMoons models are rebuilt exactly as the learn stage trained them (same labelled set, same
(seed, round) seeds), so the maps show the very model that chose the points.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer

from bal.config import load_params
from bal.inference import predict_log_probs
from bal.information import expected_entropy, mean_log_probs, mutual_information, predictive_entropy
from bal.io import atomic_write_bytes
from bal.loop import fit, initial_indices
from bal.prepared import load_prepared
from bal.plotting import Panel, accuracy_table, acquired_classes, bald_terms, decision_maps, learning_curves, render
from bal.results import BATCHBALD_2019, GAL_2017, STAGES, acquired_per_class, evaluated_split, read_runs
from common import fails_cleanly

app = typer.Typer(add_completion=False)

ZOOM = (85, 100)  # accuracy range (%) of the zoomed panels of a dataset that reproduces the papers
# The zoomed panels of the datasets in report.papers (MNIST): groups of strategies beside random and BALD,
# with the papers' marks.
PAPER_GROUPS = [
    Panel("Gal et al. 2017's strategies (hollow: their Table 1)",
          ["random", "max_entropy", "variation_ratios", "mean_std", "bald"], GAL_2017, ZOOM),
    Panel("batch-aware, 10 a round (hollow: BatchBALD paper)", ["random", "bald", "batchbald", "power_bald"],
          BATCHBALD_2019[10], ZOOM),
    Panel("cheaper scores", ["random", "bald", "margin", "least_confidence"], None, ZOOM),
    Panel("prediction-oriented and diverse: EPIG, BADGE", ["random", "bald", "epig", "badge"], None, ZOOM),
]


def zoom_range(curves: dict, column: str) -> tuple[float, float]:
    """The accuracy range (%) of a zoomed panel for a dataset not in report.papers: from just below the
    lowest strategy's mean accuracy a quarter of the way along the label range, to just above the best."""
    means = [accuracy_table(by_seed, column).mean(axis=1) for by_seed in curves.values()]
    low = min(m.iloc[len(m) // 4] for m in means)
    high = max(m.max() for m in means)
    return math.floor(low) - 1, min(100, math.ceil(high) + 1)


def curve_panels(dataset: str, kind: str, papers: list[str], strategies: list[str], zoom: tuple[float, float]) -> list[Panel]:
    """All strategies over the full range, then (image datasets) zoomed panels: for a dataset of
    ``papers`` (report.papers) the papers' groups (on ZOOM, the papers' range), and any strategy in none
    of them beside random and BALD; for another, all strategies on ``zoom``."""
    overview = Panel(f"{dataset}: test accuracy vs labelled samples", strategies)
    if kind != "image":
        return [overview]
    if dataset not in papers:
        return [overview, Panel(f"zoom: {zoom[0]}-{zoom[1]}%", strategies, None, zoom)]
    panels = [overview, *PAPER_GROUPS]
    others = [s for s in strategies if not any(s in group.strategies for group in PAPER_GROUPS)]
    if others:
        panels.append(Panel("other strategies", ["random", "bald", *others], None, ZOOM))
    return panels


def write(out: Path, name: str, fig) -> None:
    for fmt, data in render(fig).items():
        atomic_write_bytes(out / f"{name}.{fmt}", data)


def twomoons_figures(params, runs: Path, prepared: Path, out: Path) -> None:
    learn, seed = params.learn["twomoons"], params.run.seeds[0]
    split = load_prepared(prepared)
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    acquired = read_runs(runs, "twomoons", params.run.strategies, [seed], "acquired.csv")
    initial = initial_indices(split.pool_y, learn.initial_per_class, seed)
    pool_x = split.pool_x.numpy()
    lo, hi = pool_x.min(axis=0) - 0.5, pool_x.max(axis=0) + 0.5
    grid_x, grid_y = np.meshgrid(np.linspace(lo[0], hi[0], 160), np.linspace(lo[1], hi[1], 120))
    grid = torch.tensor(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1), dtype=torch.float32)

    @functools.cache  # the BALD strip's last round is the strategy panel's model: train it once
    def grid_log_probs(strategy: str, round_: int):
        table = acquired[strategy][seed]
        labelled = initial + table.loc[table["round"] < round_, "pool_index"].tolist()
        settings = learn.loop_settings(strategy, seed, initial, params.strategy_options(strategy))
        model, generator = fit(split, labelled, make_model, settings, round_, torch.device("cpu"))
        return predict_log_probs(model, grid, learn.mc_samples, generator), pool_x[labelled]

    panels = {}
    for strategy, by_seed in acquired.items():
        table = by_seed[seed]
        last = int(table["round"].max()) + 1
        log_probs, _ = grid_log_probs(strategy, last)
        panels[strategy] = {
            "prob": mean_log_probs(log_probs)[:, 1].exp().reshape(grid_x.shape).numpy(),
            "initial": pool_x[initial],
            "acquired": pool_x[table.pool_index.to_numpy()],
            "rounds": table["round"].to_numpy(),
        }
    write(out, "twomoons_strategies", decision_maps(panels, grid_x, grid_y, pool_x, split.pool_y.numpy()))

    strategy = "bald" if "bald" in acquired else params.run.strategies[0]
    last = int(acquired[strategy][seed]["round"].max()) + 1
    rows = []
    for round_ in sorted({0, last // 3, last}):
        log_probs, labelled = grid_log_probs(strategy, round_)
        maps = {name: fn(log_probs).reshape(grid_x.shape).numpy()
                for name, fn in (("entropy", predictive_entropy), ("expected_entropy", expected_entropy),
                                 ("bald", mutual_information))}
        rows.append({"title": f"{strategy}, {len(labelled)} labels", "labelled": labelled, **maps})
    write(out, "twomoons_bald_terms", bald_terms(rows, grid_x, grid_y, pool_x))


@app.command()
@fails_cleanly
def main(
    runs: Path = typer.Option(..., help="folder holding <dataset>/<strategy>/<seed>/{curve,acquired}.csv"),
    prepared: Path = typer.Option(..., help="folder holding the prepared <dataset> folders"),
    out: Path = typer.Option(..., help="folder for the PNG and SVG figures"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params = load_params(params_path)
    torch.set_num_threads(params.compute.threads)
    for group, grid in params.grids().items():
        for dataset in grid.datasets:
            read = functools.partial(read_runs, runs, dataset, grid.strategies, grid.seeds, missing_ok=True,
                                     group=STAGES[group])
            curves = read("curve.csv")
            if not curves:
                continue
            column = params.report.column(evaluated_split(curves))
            split = load_prepared(prepared / dataset)
            panels = curve_panels(dataset, split.kind, params.report.papers, list(curves), zoom_range(curves, column))
            write(out, f"{dataset}_curves", learning_curves(curves, panels, column))
            if split.kind == "image":  # TwoMoons has its maps instead
                class_names = split.class_names
                tables = read("acquired.csv")
                counts = pd.DataFrame({s: acquired_per_class(t, len(class_names)) for s, t in tables.items()},
                                      index=class_names).T
                fewest, most = min(map(len, tables.values())), max(map(len, tables.values()))
                seeds = f"{fewest}" if fewest == most else f"{fewest}-{most}"
                write(out, f"{dataset}_acquired_classes",
                      acquired_classes(counts, f"{dataset}: classes acquired (mean over {seeds} seeds per strategy)"))
    if "twomoons" in params.run.datasets:
        twomoons_figures(params, runs, prepared / "twomoons", out)
    typer.echo(f"figures -> {out}")


if __name__ == "__main__":
    app()
