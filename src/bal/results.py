"""Learning curves -> summary metrics and the wide table that `dvc plots` draws."""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path

import pandas as pd

from bal.data import DataError

THRESHOLDS = (0.90, 0.95, 0.97)

# Published MNIST numbers. Gal, Islam & Ghahramani 2017, Table 1: labels to 10% and 5% test error,
# as {strategy: {labels: accuracy %}} marks; Table 2: test error (%) at 1,000 labels.
GAL_2017 = {"bald": {145: 90, 335: 95}, "variation_ratios": {120: 90, 295: 95},
            "max_entropy": {165: 90, 355: 95}, "random": {255: 90, 835: 95}}
GAL_2017_ERROR_AT_1000 = {"bald": 1.80, "variation_ratios": 1.64, "max_entropy": 1.74, "random": 4.66}
# Kirsch, van Amersfoort & Gal 2019 (BatchBALD), official runs: median labels to 90% / 95% by acquisition
# size (BALD b=10 had not reached 95% at 260 labels, so it has no 95% mark).
BATCHBALD_2019 = {10: {"batchbald": {105: 90, 225: 95}, "bald": {155: 90}}, 5: {"batchbald": {95: 90, 195: 95}}}


def read_runs(
    runs: Path, dataset: str, strategies: list[str], seeds: list[int], name: str, size: int | None = None,
    missing_ok: bool = False,
) -> dict:
    """``{strategy: {seed: table}}`` of the learn stages' ``name`` CSVs (curve.csv or acquired.csv),
    or with ``size`` of the study stages' with that acquisition size.

    A missing run is an error, or with ``missing_ok`` a warning naming its stage, so that a grid
    that is still running can be summarised (each summary lists the seeds it holds).
    """
    tables = {}
    for strategy in strategies:
        tables[strategy] = {}
        for seed in seeds:
            if size is None:
                path, stage = runs / dataset / strategy / str(seed) / name, f"learn@{dataset}-{strategy}-{seed}"
            else:
                path = runs / dataset / strategy / f"b{size}" / str(seed) / name
                stage = f"study@{dataset}-{strategy}-{size}-{seed}"
            if path.is_file():
                tables[strategy][seed] = pd.read_csv(path)
            elif missing_ok:
                warnings.warn(f"{path} is missing (stage {stage}); summarising without it.", stacklevel=2)
            else:
                raise DataError(f"{path} is missing; run its stage (dvc repro {stage}).")
    return {strategy: by_seed for strategy, by_seed in tables.items() if by_seed}


def labels_to(curve: pd.DataFrame, accuracy: float, column: str = "test_accuracy") -> float:
    """The first labelled-set size whose ``column`` reaches ``accuracy`` (inf if none does)."""
    reached = curve.loc[curve[column] >= accuracy, "n_labelled"]
    return float(reached.iloc[0]) if len(reached) else math.inf


def normalised_auc(curve: pd.DataFrame, column: str = "test_accuracy") -> float:
    """Area under accuracy vs labels divided by the label range: the curve's mean accuracy."""
    n, acc = curve.n_labelled.to_numpy(float), curve[column].to_numpy(float)
    if len(n) < 2:
        return float(acc[0])
    return float(((acc[1:] + acc[:-1]) / 2 * (n[1:] - n[:-1])).sum() / (n[-1] - n[0]))


def _finite_or_none(x: float) -> int | None:
    return None if math.isinf(x) else int(x)


def summarise(curves: dict[int, pd.DataFrame]) -> dict:
    """One strategy's metrics over its seeds (``curves`` maps seed -> curve): labels to each accuracy
    threshold (median, and per seed; None where not reached), final accuracy (mean, std), AUC."""
    finals = [c.test_accuracy.iloc[-1] for c in curves.values()]
    summary = {}
    for t in THRESHOLDS:
        by_seed = [labels_to(c, t) for c in curves.values()]
        summary[f"labels_to_{round(t * 100)}"] = _finite_or_none(statistics.median(by_seed))
        summary[f"labels_to_{round(t * 100)}_by_seed"] = [_finite_or_none(x) for x in by_seed]
    summary.update(
        final_accuracy=statistics.fmean(finals),
        final_accuracy_std=statistics.pstdev(finals),
        final_labels=int(next(iter(curves.values())).n_labelled.iloc[-1]),
        auc=statistics.fmean(normalised_auc(c) for c in curves.values()),
        seeds=sorted(curves),
    )
    return summary


def copies_acquired(acquired: pd.DataFrame, n_originals: int) -> float:
    """The fraction of acquired points whose original (pool index mod ``n_originals``) had already been
    acquired, in an earlier round or earlier in the same batch: on Repeated-MNIST, wasted labels."""
    original = acquired.pool_index % n_originals
    return float(original.duplicated().mean()) if len(original) else 0.0


def wide_table(curves: dict[str, dict[int, pd.DataFrame]], column: str = "test_accuracy") -> pd.DataFrame:
    """n_labelled plus one column per strategy: ``column`` averaged over seeds."""
    columns = [
        pd.concat([c.set_index("n_labelled")[column] for c in by_seed.values()], axis=1).mean(axis=1).rename(strategy)
        for strategy, by_seed in curves.items()
    ]
    return pd.concat(columns, axis=1).rename_axis("n_labelled").reset_index()
