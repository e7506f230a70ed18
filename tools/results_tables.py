"""Markdown tables for the README and docs/results.md from the committed metrics, with the papers'
numbers beside them.

    python tools/results_tables.py > docs/results.md    # reads metrics/summary.json and metrics/study.json

Labels to an accuracy are "median (interquartile range over seeds)"; "—" where the median seed never
reached it within the budget, and ">N" for a quartile that never did. Accuracy is mean ± standard
deviation (sample, n − 1) over seeds. Paired differences are means over the n seeds both ran, with a
95% t-interval (n − 1 degrees of freedom) where n ≥ 3, else each seed's difference; a seed that never
reached a threshold counts as the budget (a lower bound), and a difference holding one is marked ≥ or ≤
(a bound, not an estimate), or "censored" where both sides were. A published "—": no such number (the BatchBALD paper's BALD b=10 had not reached 95% at 260 labels).
"""

from __future__ import annotations

import json
from pathlib import Path

from bal.config import load_params
from bal.results import BATCHBALD_2019, GAL_2017, GAL_2017_ERROR_AT_1000, THRESHOLDS


def _number(x: float) -> str:
    return f"{x:g}"


def labels(s: dict, threshold: int) -> str:
    median, (q1, q3), budget = s[f"labels_to_{threshold}"], s[f"labels_to_{threshold}_iqr"], s["final_labels"]
    text = "—" if median is None else _number(median)
    if len(s["seeds"]) > 1 and q1 is not None:
        text += f" ({_number(q1)}–{_number(q3) if q3 is not None else f'>{budget}'})"
    return text


def seeds(s: dict) -> str:
    return f"{len(s['seeds'])} seed{'s' * (len(s['seeds']) > 1)}"


def thresholds(summary: dict) -> list[int]:
    """The three highest accuracy thresholds (%) that some strategy's median seed reached: 90 / 95 /
    97% on MNIST, lower on harder data."""
    reached = [round(100 * t) for t in THRESHOLDS
               if any(s[f"labels_to_{round(100 * t)}"] is not None for s in summary.values())]
    return (reached or [round(100 * t) for t in THRESHOLDS])[-3:]


def accuracy(s: dict) -> str:
    spread = f" ± {100 * s['final_accuracy_std']:.2f}" if len(s["seeds"]) > 1 else ""
    return f"{100 * s['final_accuracy']:.2f}%{spread}"


def paper(marks: dict[int, float]) -> str:
    by_accuracy = {acc: n for n, acc in marks.items()}
    return " / ".join(str(by_accuracy.get(acc, "—")) for acc in (90, 95))


def replication(summary: dict, dataset: str, rare: list[int] | None = None) -> str:
    """The grid's table; ``rare``: the classes an unbalanced pool thinned, whose share of the acquired
    points gets a column."""
    papers = dataset == "mnist"
    shown = thresholds(summary)
    header = "| strategy | " + " | ".join(f"labels to {t}%" for t in shown) + " | accuracy at {n} | AUC |"
    if rare:
        header += f" acquired from classes {', '.join(map(str, rare))} |"
    if papers:
        header += " Gal et al. 2017: labels to 90% / 95%, accuracy at 1,000 | BatchBALD paper, b=10: labels to 90% / 95% |"
    rows = [header, "|---|" + "---:|" * (len(shown) + 2 + bool(rare)) + "---|---|" * papers]
    n = None
    for strategy, s in summary.items():
        n = s["final_labels"]
        row = (f"| `{strategy}` ({seeds(s)}) | " + " | ".join(labels(s, t) for t in shown)
               + f" | {accuracy(s)} | {100 * s['auc']:.2f}% |")
        if rare:
            per_class = s["acquired_per_class"]
            row += f" {100 * sum(per_class[c] for c in rare) / sum(per_class):.0f}% |"
        if papers:
            gal = (f"{paper(GAL_2017[strategy])}, {100 - GAL_2017_ERROR_AT_1000[strategy]:.2f}%"
                   if strategy in GAL_2017 else "")
            batchbald = paper(BATCHBALD_2019[10][strategy]) if strategy in BATCHBALD_2019[10] else ""
            row += f" {gal} | {batchbald} |"
        rows.append(row)
    rows[0] = rows[0].format(n=f"{n:,}" if n else "budget")
    return "\n".join(rows)


def _difference(d: dict | None, scale: float, unit: str) -> str:
    if d is None:
        return "—"
    places = 1 if unit else 0
    number = lambda x: f"{round(scale * x, places) + 0.0:+.{places}f}"  # noqa: E731  (no "-0")
    spread = f"[{number(d['ci95'][0])}, {number(d['ci95'][1])}]" if d["ci95"] else \
        f"(seeds: {', '.join(number(x) for x in d['by_seed'])})"
    bound = {None: "", "lower": "≥ ", "upper": "≤ ", "none": "censored: "}[d["bound"]]  # bal.results.paired_difference
    return f"{bound}{number(d['mean'])}{unit} {spread}, n = {d['n']}"


def comparisons(summary: dict) -> str:
    """Each strategy against random and BALD: paired per-seed differences in the area under the curve
    (percentage points of mean accuracy) and in labels to the middle threshold of the table (95% on
    MNIST), with the seeds that both reached it."""
    shown = thresholds(summary)
    t = shown[len(shown) // 2]
    rows = [f"| strategy | AUC vs random | labels to {t}% vs random | AUC vs BALD | labels to {t}% vs BALD |",
            "|---|---:|---:|---:|---:|"]
    for strategy, s in summary.items():
        cells = []
        for baseline in ("random", "bald"):
            d = s.get(f"vs_{baseline}")
            cells += ["", ""] if d is None else [_difference(d["auc"], 100, " pp"), _difference(d[f"labels_to_{t}"], 1, "")]
        rows.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def ranks(summary: dict) -> str:
    """Which strategies keep their rank from one dataset to another: each strategy's rank by AUC
    among the strategies that every dataset ran, with its paired AUC difference against random, and
    each dataset's Spearman rank correlation with the first."""
    common = [s for s in next(iter(summary.values())) if all(s in content for content in summary.values())]
    rank = {dataset: {s: i + 1 for i, s in enumerate(sorted(common, key=lambda s: -content[s]["auc"]))}
            for dataset, content in summary.items()}
    first = next(iter(rank.values()))
    rows = ["| strategy | " + " | ".join(f"{d}: rank (AUC vs random)" for d in summary) + " |",
            "|---|" + "---:|" * len(summary)]
    for strategy in sorted(common, key=first.get):
        cells = []
        for dataset, content in summary.items():
            d = content[strategy].get("vs_random")
            cells.append(f"{rank[dataset][strategy]}" + ("" if d is None else f" ({_difference(d['auc'], 100, ' pp')})"))
        rows.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    n = len(common)
    rho = {d: 1 - 6 * sum((r[s] - first[s]) ** 2 for s in common) / (n * (n * n - 1)) if n > 1 else float("nan")
           for d, r in rank.items()}
    rows.append("| Spearman ρ with the first | " + " | ".join(f"{rho[d]:.2f}" for d in summary) + " |")
    return "\n".join(rows)


def study(by_size: dict, dataset: str) -> str:
    copies = dataset == "repeated_mnist"
    rows = ["| acquisition size | strategy | labels to 90% | labels to 95% | accuracy at {n} |"
            + (" copies of acquired originals |" if copies else " BatchBALD paper: labels to 90% / 95% |"),
            "|---:|---|---:|---:|---:|---|"]
    n = None
    for size, by_strategy in sorted(by_size.items(), key=lambda item: int(item[0][1:])):
        b = int(size[1:])
        for strategy, s in by_strategy.items():
            n = s["final_labels"]
            published = BATCHBALD_2019.get(b, {}).get(strategy)
            last = f"{100 * s['copies_acquired']:.0f}%" if copies else (paper(published) if published else "")
            if s.get("first_pick_past_ceiling") is not None:
                last += f"; past 0.9 log K from pick {_number(s['first_pick_past_ceiling'])} (median) in " \
                        f"{100 * s['rounds_past_ceiling']:.0f}% of rounds"
            rows.append(f"| {b} | `{strategy}` ({seeds(s)}) | {labels(s, 90)} | {labels(s, 95)} "
                        f"| {accuracy(s)} | {last} |")
    rows[0] = rows[0].format(n=n or "budget")
    return "\n".join(rows)


def main() -> None:
    params = load_params(Path("params.yaml"))
    print("# Results tables\n\nWritten by `python tools/results_tables.py > docs/results.md` from the committed "
          "`metrics/summary.json` and `metrics/study.json`. " + " ".join(__doc__.split("\n\n")[2].split()))
    for path in ("metrics/summary.json", "metrics/study.json"):
        if not Path(path).is_file():
            continue
        data = json.loads(Path(path).read_text())
        for dataset, content in data.items():
            if path.endswith("summary.json"):
                entry = params.dataset(dataset) if dataset in params.datasets() else None
                print(f"\n## {dataset}\n\n" + replication(content, dataset, getattr(entry.options, "rare_classes", None)
                                                           if entry else None))
                print(f"\n**{dataset}: paired differences** (mean over the n seeds both ran [95% t-interval, n − 1 df]; "
                      "below 3 seeds each seed's difference)\n")
                print(comparisons(content))
            else:
                print(f"\n## {dataset}: the acquisition-size study\n\n" + study(content, dataset))
        if path.endswith("summary.json") and len(data) > 1:
            print("\n## Ranks across datasets\n\nBy AUC, among the strategies that every dataset ran; in "
                  "brackets the paired AUC difference against random (mean over seeds [95% t-interval, n − 1 df]).\n")
            print(ranks(data))


if __name__ == "__main__":
    main()
