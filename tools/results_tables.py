"""Markdown tables for the README from the committed metrics, with the papers' numbers beside them.

    python tools/results_tables.py            # reads metrics/summary.json and metrics/study.json

Labels to an accuracy are "median (min-max over seeds)"; "—" where the median seed never reached it
within the budget, and ">N" for a seed that never did. A published "—": no such number (the
BatchBALD paper's BALD b=10 had not reached 95% at 260 labels).
"""

from __future__ import annotations

import json
from pathlib import Path

from bal.results import BATCHBALD_2019, GAL_2017, GAL_2017_ERROR_AT_1000


def labels(s: dict, threshold: int) -> str:
    median, by_seed, budget = s[f"labels_to_{threshold}"], s[f"labels_to_{threshold}_by_seed"], s["final_labels"]
    text = "—" if median is None else str(median)
    reached = sorted(x for x in by_seed if x is not None)
    if len(by_seed) > 1 and reached:
        low = str(reached[0])
        high = str(reached[-1]) if len(reached) == len(by_seed) else f">{budget}"
        text += f" ({low}–{high})"
    return text


def seeds(s: dict) -> str:
    return f"{len(s['seeds'])} seed{'s' * (len(s['seeds']) > 1)}"


def paper(marks: dict[int, float]) -> str:
    by_accuracy = {acc: n for n, acc in marks.items()}
    return " / ".join(str(by_accuracy.get(acc, "—")) for acc in (90, 95))


def replication(summary: dict, dataset: str) -> str:
    papers = dataset == "mnist"
    header = "| strategy | labels to 90% | labels to 95% | labels to 97% | accuracy at {n} |"
    if papers:
        header += " Gal et al. 2017: labels to 90% / 95%, accuracy at 1,000 | BatchBALD paper, b=10: labels to 90% / 95% |"
    rows = [header, "|---|---:|---:|---:|---:|" + "---|---|" * papers]
    n = None
    for strategy, s in summary.items():
        n = s["final_labels"]
        spread = f" ± {100 * s['final_accuracy_std']:.2f}" if len(s["seeds"]) > 1 else ""
        accuracy = f"{100 * s['final_accuracy']:.2f}%{spread}"
        row = (f"| `{strategy}` ({seeds(s)}) | {labels(s, 90)} | {labels(s, 95)} | {labels(s, 97)} "
               f"| {accuracy} |")
        if papers:
            gal = (f"{paper(GAL_2017[strategy])}, {100 - GAL_2017_ERROR_AT_1000[strategy]:.2f}%"
                   if strategy in GAL_2017 else "")
            batchbald = paper(BATCHBALD_2019[10][strategy]) if strategy in BATCHBALD_2019[10] else ""
            row += f" {gal} | {batchbald} |"
        rows.append(row)
    rows[0] = rows[0].format(n=f"{n:,}" if n else "budget")
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
            rows.append(f"| {b} | `{strategy}` ({seeds(s)}) | {labels(s, 90)} | {labels(s, 95)} "
                        f"| {100 * s['final_accuracy']:.2f}% | {last} |")
    rows[0] = rows[0].format(n=n or "budget")
    return "\n".join(rows)


def main() -> None:
    for path in ("metrics/summary.json", "metrics/study.json"):
        if not Path(path).is_file():
            continue
        data = json.loads(Path(path).read_text())
        for dataset, content in data.items():
            print(f"\n**{dataset}** ({path})\n")
            print(replication(content, dataset) if path.endswith("summary.json") else study(content, dataset))


if __name__ == "__main__":
    main()
