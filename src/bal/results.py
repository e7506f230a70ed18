"""Learning curves -> summary metrics and the wide table that `dvc plots` draws."""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from bal.errors import DataError

THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 0.97)  # 80% and 85% for harder data (Fashion-MNIST)
BASELINES = ("random", "bald")  # every strategy is compared with these, seed by seed
STAGES = {"run": "learn", "survey": "survey", "shift": "shift", "simulate": "simulate"}  # each learn grid's stages, by its key

# Published MNIST numbers. Gal, Islam & Ghahramani 2017, Table 1: labels to 10% and 5% test error,
# as {strategy: {labels: accuracy %}} marks; Table 2: test error (%) at 1,000 labels (no Mean STD row).
GAL_2017 = {"bald": {145: 90, 335: 95}, "variation_ratios": {120: 90, 295: 95},
            "max_entropy": {165: 90, 355: 95}, "mean_std": {230: 90, 695: 95}, "random": {255: 90, 835: 95}}
GAL_2017_ERROR_AT_1000 = {"bald": 1.80, "variation_ratios": 1.64, "max_entropy": 1.74, "random": 4.66}
# Kirsch, van Amersfoort & Gal 2019 (BatchBALD), official runs: median labels to 90% / 95% by acquisition
# size (BALD b=10 had not reached 95% at 260 labels, so it has no 95% mark).
BATCHBALD_2019 = {10: {"batchbald": {105: 90, 225: 95}, "bald": {155: 90}}, 5: {"batchbald": {95: 90, 195: 95}}}


def read_runs(
    runs: Path, dataset: str, strategies: list[str], seeds: list[int], name: str, size: int | None = None,
    missing_ok: bool = False, group: str | None = None,
) -> dict:
    """``{strategy: {seed: table}}`` of the ``group`` stages' ``name`` CSVs (curve.csv or acquired.csv;
    group learn, survey, shift or simulate), or with ``size`` of the ``group`` study stages' (study or
    single) with that acquisition size. ``group`` names the stage in messages (default learn or study).

    A missing run is an error, or with ``missing_ok`` a warning naming its stage, so that a grid
    that is still running can be summarised (each summary lists the seeds it holds).
    """
    tables, group = {}, group or ("learn" if size is None else "study")
    for strategy in strategies:
        tables[strategy] = {}
        for seed in seeds:
            if size is None:
                path, stage = runs / dataset / strategy / str(seed) / name, f"{group}@{dataset}-{strategy}-{seed}"
            else:
                path = runs / dataset / strategy / f"b{size}" / str(seed) / name
                stage = f"{group}@{dataset}-{strategy}-{size}-{seed}"
            if path.is_file():
                tables[strategy][seed] = pd.read_csv(path)
            elif missing_ok:
                warnings.warn(f"{path} is missing (stage {stage}); summarising without it.", stacklevel=2)
            else:
                raise DataError(f"{path} is missing; run its stage (dvc repro {stage}).")
    return {strategy: by_seed for strategy, by_seed in tables.items() if by_seed}


def evaluated_split(*groups: dict) -> str:
    """The split the runs evaluated on (their learn.<dataset>.evaluate_on), read from the first curve's
    columns (``<split>_nll``) of ``{strategy: {seed: curve}}`` tables; test where there is none."""
    first = next((c for curves in groups for by_seed in curves.values() for c in by_seed.values()), None)
    return "test" if first is None else next(c.removesuffix("_nll") for c in first.columns if c.endswith("_nll"))


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


def _finite_or_none(x: float) -> int | float | None:
    return None if math.isinf(x) else x if isinstance(x, float) and not x.is_integer() else int(x)


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile, interpolated linearly between order statistics; a never-reached (inf)
    value with any weight makes it inf."""
    xs = sorted(values)
    position = q * (len(xs) - 1)
    low = math.floor(position)
    fraction = position - low
    if fraction == 0:
        return xs[low]
    return math.inf if math.isinf(xs[low + 1]) else xs[low] + fraction * (xs[low + 1] - xs[low])


def summarise(curves: dict[int, pd.DataFrame], column: str = "test_accuracy") -> dict:
    """One strategy's metrics over its seeds (``curves`` maps seed -> curve) from its ``column``:
    labels to each accuracy threshold (median and interquartile range, and per seed; None where not
    reached), final accuracy (mean and sample standard deviation) and area under the curve. Per-seed
    values are in the order of ``seeds``, ascending."""
    curves = dict(sorted(curves.items()))
    finals = [c[column].iloc[-1] for c in curves.values()]
    summary = {}
    for t in THRESHOLDS:
        by_seed = [labels_to(c, t, column) for c in curves.values()]
        name = f"labels_to_{round(t * 100)}"
        summary[name] = _finite_or_none(statistics.median(by_seed))
        summary[f"{name}_iqr"] = [_finite_or_none(quantile(by_seed, q)) for q in (0.25, 0.75)]
        summary[f"{name}_by_seed"] = [_finite_or_none(x) for x in by_seed]
    summary.update(
        final_accuracy=statistics.fmean(finals),
        final_accuracy_std=statistics.stdev(finals) if len(finals) > 1 else 0.0,
        final_labels=int(next(iter(curves.values())).n_labelled.iloc[-1]),
        auc=statistics.fmean(normalised_auc(c, column) for c in curves.values()),
        seeds=list(curves),
    )
    return summary


def paired_difference(a: dict[int, float], b: dict[int, float], budget: float | None = None) -> dict | None:
    """The mean over the seeds both sides ran of ``a[seed] - b[seed]``, each seed's difference, and with n >= 3
    seeds a 95% t-interval (n - 1 degrees of freedom, sample standard deviation); with fewer, no interval.

    Censoring: a seed that never reached a threshold (inf) counts as ``budget``, a lower bound on the labels it
    would need; it is never dropped. Its seeds are listed under ``censored``, and the difference is then a
    ``bound``: "lower" where only ``a`` was censored, "upper" where only ``b`` was, "none" where both were
    (no bound holds). Without a budget (areas under the curve, never censored) an inf is an error.
    """
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        return None
    censored = [s for s in seeds if math.isinf(a[s]) or math.isinf(b[s])]
    if censored and budget is None:
        raise ValueError("a never-reached value needs the budget it is censored at")
    value = lambda x: budget if math.isinf(x) else x  # noqa: E731
    d = np.array([value(a[s]) - value(b[s]) for s in seeds], dtype=float)
    sides = {("a" if math.isinf(a[s]) else "") + ("b" if math.isinf(b[s]) else "") for s in censored}
    bound = None if not sides else "lower" if sides == {"a"} else "upper" if sides == {"b"} else "none"
    out = {"mean": float(d.mean()), "n": len(d), "seeds": seeds, "by_seed": d.tolist(), "censored": censored,
           "bound": bound, "ci95": None}
    if len(d) >= 3:
        half = float(scipy.stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
    return out


def paired_comparisons(curves: dict[str, dict[int, pd.DataFrame]], column: str = "test_accuracy") -> dict:
    """``{strategy: {"vs_<baseline>": {"auc": ..., "labels_to_90": ..., "labels_to_95": ..., ...}}}``:
    each strategy against each of BASELINES that ran, seed by seed, in the area under the curve and in
    labels to each of THRESHOLDS (seeds share the initial labelled set, so pairs are fair)."""
    per_seed = {
        strategy: {"auc": {seed: normalised_auc(c, column) for seed, c in by_seed.items()},
                   **{f"labels_to_{round(100 * t)}": {seed: labels_to(c, t, column) for seed, c in by_seed.items()}
                      for t in THRESHOLDS}}
        for strategy, by_seed in curves.items()
    }
    budget = max(float(c.n_labelled.iloc[-1]) for by_seed in curves.values() for c in by_seed.values())
    return {
        strategy: {f"vs_{baseline}": {metric: paired_difference(values[metric], per_seed[baseline][metric],
                                                                None if metric == "auc" else budget)
                                      for metric in values}
                   for baseline in BASELINES if baseline in per_seed and baseline != strategy}
        for strategy, values in per_seed.items()
    }


def copies_acquired(acquired: pd.DataFrame, n_originals: int) -> float:
    """The fraction of acquired points whose original (pool index mod ``n_originals``) had already been
    acquired, in an earlier round or earlier in the same batch: on Repeated-MNIST, wasted labels."""
    original = acquired.pool_index % n_originals
    return float(original.duplicated().mean()) if len(original) else 0.0


def acquired_per_class(tables: dict[int, pd.DataFrame], classes: int) -> list[float]:
    """How many points of each class a strategy acquired (acquired.csv's labels), mean over seeds."""
    counts = [np.bincount(t.label.to_numpy(), minlength=classes) for t in tables.values()]
    return np.mean(counts, axis=0).tolist()


def ceiling_picks(acquired: list[pd.DataFrame]) -> dict:
    """Where a joint-score strategy's batches reached their log K ceiling (acquired.csv's past_ceiling,
    one table per seed): the fraction of rounds that did, and the median 1-based pick at which they did."""
    rounds = [r.past_ceiling.to_numpy() for table in acquired for _, r in table.groupby("round")]
    first = [int(np.argmax(past)) + 1 for past in rounds if past.any()]
    return {"rounds_past_ceiling": len(first) / len(rounds) if rounds else 0.0,
            "first_pick_past_ceiling": statistics.median(first) if first else None}


def long_table(curves: dict[str, dict[int, pd.DataFrame]], column: str = "test_accuracy") -> pd.DataFrame:
    """One row per strategy, seed and labelled-set size, with that run's ``column`` as ``accuracy``:
    the table `dvc plots` draws (its template colours by strategy and shades the spread over seeds)."""
    return pd.concat(
        [pd.DataFrame({"n_labelled": c.n_labelled, "strategy": strategy, "seed": seed, "accuracy": c[column]})
         for strategy, by_seed in curves.items() for seed, c in by_seed.items()],
        ignore_index=True,
    )
