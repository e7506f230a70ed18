"""Summarise ablations measured on the dev split, each against a baseline, seed by seed.

    python tools/ablation_summary.py protocol_baseline protocol_keras_init protocol_dense_decay ...

The first name is the baseline. For each ablation and strategy: dev accuracy (MC-averaged) at 100
and 200 labels and at the budget, with dropout off at the budget, labels to 90%, 95% and 97% on dev, and the area under
the dev curve (MC-averaged, and dropout off), as mean over seeds; then the paired difference from the baseline on the same seed
(the seed fixes the initial labelled set). Prints a Markdown table. Never reads the test set.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import typer

from bal.results import labels_to, normalised_auc

ROOT = Path(__file__).resolve().parents[1]


def metrics(curve: pd.DataFrame) -> dict[str, float]:
    at, last = curve.set_index("n_labelled"), int(curve.n_labelled.iloc[-1])
    return {
        "dev@100": 100 * at.dev_accuracy.get(100, float("nan")),
        "dev@200": 100 * at.dev_accuracy.get(200, float("nan")),
        f"dev@{last}": 100 * at.dev_accuracy.iloc[-1],
        f"off@{last}": 100 * at.dev_accuracy_dropout_off.iloc[-1],
        **{f"to {t}%": labels_to(curve, t / 100, "dev_accuracy") for t in (90, 95, 97)},
        "AUC": 100 * normalised_auc(curve, "dev_accuracy"),
        "AUC off": 100 * normalised_auc(curve, "dev_accuracy_dropout_off"),
    }


def number(x: float, digits: int, sign: bool = False) -> str:
    """``x`` rounded, or "—" where a threshold was not reached within the budget."""
    return "—" if not math.isfinite(x) else f"{x:{'+' if sign else ''}.{digits}f}"


def runs(name: str, dataset: str) -> dict[tuple[str, int], dict[str, float]]:
    folder = ROOT / "data" / "ablations" / name / dataset
    return {(p.parent.parent.name, int(p.parent.name)): metrics(pd.read_csv(p)) for p in sorted(folder.glob("*/*/curve.csv"))}


def main(names: list[str], dataset: str = typer.Option("mnist")) -> None:
    base = runs(names[0], dataset)
    keys = list(next(iter(base.values())))
    print("| ablation | strategy | seeds | " + " | ".join(keys) + " |")
    print("|---|---|---:|" + "---:|" * len(keys))
    for name in names:
        measured = runs(name, dataset)
        for strategy in sorted({s for s, _ in measured}):
            seeds = sorted(seed for s, seed in measured if s == strategy)
            cells = []
            for key in keys:
                digits = 0 if key.startswith("to") else 2
                mean = statistics.fmean(measured[strategy, seed][key] for seed in seeds)
                paired = [measured[strategy, seed][key] - base[strategy, seed][key] for seed in seeds
                          if (strategy, seed) in base]
                cell = number(mean, digits)
                if name != names[0] and paired:
                    cell += " (" + "/".join(number(d, digits, sign=True) for d in paired) + ")"
                cells.append(cell)
            print(f"| {name} | {strategy} | {len(seeds)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    typer.run(main)
