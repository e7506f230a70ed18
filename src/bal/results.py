"""Learning curves -> summary metrics and the wide table that `dvc plots` draws."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd

from bal.data import DataError

THRESHOLDS = (0.90, 0.95, 0.97)


def read_runs(runs: Path, dataset: str, strategies: list[str], seeds: list[int], name: str) -> dict:
    """``{strategy: {seed: table}}`` of the learn stages' ``name`` CSVs (curve.csv or acquired.csv)."""
    tables = {}
    for strategy in strategies:
        tables[strategy] = {}
        for seed in seeds:
            path = runs / dataset / strategy / str(seed) / name
            if not path.is_file():
                raise DataError(f"{path} is missing; run its learn stage (dvc repro learn@{dataset}-{strategy}-{seed}).")
            tables[strategy][seed] = pd.read_csv(path)
    return tables


def labels_to(curve: pd.DataFrame, accuracy: float) -> float:
    """The first labelled-set size whose test accuracy reaches ``accuracy`` (inf if none does)."""
    reached = curve.loc[curve.test_accuracy >= accuracy, "n_labelled"]
    return float(reached.iloc[0]) if len(reached) else math.inf


def normalised_auc(curve: pd.DataFrame) -> float:
    """Area under accuracy vs labels divided by the label range: the curve's mean accuracy."""
    n, acc = curve.n_labelled.to_numpy(float), curve.test_accuracy.to_numpy(float)
    if len(n) < 2:
        return float(acc[0])
    return float(((acc[1:] + acc[:-1]) / 2 * (n[1:] - n[:-1])).sum() / (n[-1] - n[0]))


def _finite_or_none(x: float) -> int | None:
    return None if math.isinf(x) else int(x)


def summarise(curves: dict[int, pd.DataFrame]) -> dict:
    """One strategy's metrics over its seeds (``curves`` maps seed -> curve)."""
    finals = [c.test_accuracy.iloc[-1] for c in curves.values()]
    summary = {
        f"labels_to_{round(t * 100)}": _finite_or_none(statistics.median(labels_to(c, t) for c in curves.values()))
        for t in THRESHOLDS
    }
    summary.update(
        final_accuracy=statistics.fmean(finals),
        final_accuracy_std=statistics.pstdev(finals),
        final_labels=int(next(iter(curves.values())).n_labelled.iloc[-1]),
        auc=statistics.fmean(normalised_auc(c) for c in curves.values()),
        seeds=sorted(curves),
    )
    return summary


def wide_table(curves: dict[str, dict[int, pd.DataFrame]], column: str = "test_accuracy") -> pd.DataFrame:
    """n_labelled plus one column per strategy: ``column`` averaged over seeds."""
    columns = [
        pd.concat([c.set_index("n_labelled")[column] for c in by_seed.values()], axis=1).mean(axis=1).rename(strategy)
        for strategy, by_seed in curves.items()
    ]
    return pd.concat(columns, axis=1).rename_axis("n_labelled").reset_index()
