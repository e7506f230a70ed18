"""Markdown tables for the README and docs/results.md from the committed metrics, with the papers'
numbers beside them.

    python tools/results_tables.py > docs/results.md    # reads metrics/summary.json and metrics/study.json
    python tools/results_tables.py --readme README.md    # rewrites the README's generated results blocks

The README's results are blocks between ``<!-- results: NAME -->`` and ``<!-- /results -->``, each rendered
here from the metrics (tests/test_readme.py checks that the README holds exactly what the metrics say).

Conventions: CONVENTIONS below, printed at the top of docs/results.md.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import scipy.stats
import typer

from bal.config import load_params
from bal.results import BATCHBALD_2019, GAL_2017, GAL_2017_ERROR_AT_1000, THRESHOLDS, paired_difference


CONVENTIONS = " ".join("""Labels to an accuracy are "median (interquartile range over seeds)", below 3 seeds "median (seeds: each
seed's value)"; "—" where the median seed never reached it within the budget, and ">N" for a quartile or
a seed that never did. Accuracy is mean ± standard
deviation (sample, n − 1) over seeds. Paired differences are means over the n seeds both ran, with a
95% t-interval (n − 1 degrees of freedom) where n ≥ 3, else each seed's difference; a seed that never
reached a threshold counts as the budget (a lower bound), and a difference holding one is marked ≥ or ≤
(a bound, not an estimate), or "censored" where both sides were. A published "—": no such number (the BatchBALD paper's BALD b=10 had not reached 95% at 260 labels).""".split())


def _number(x: float) -> str:
    return f"{x:g}"


def labels(s: dict, threshold: int) -> str:
    """Median labels to ``threshold`` % with the interquartile range over seeds; below 3 seeds, each seed's value."""
    median, (q1, q3), budget = s[f"labels_to_{threshold}"], s[f"labels_to_{threshold}_iqr"], s["final_labels"]
    by_seed = s[f"labels_to_{threshold}_by_seed"]
    reached = lambda x: f">{budget}" if x is None else _number(x)  # noqa: E731
    text = "—" if median is None else _number(median)
    if len(by_seed) == 2 and by_seed != [None, None]:
        text += f" (seeds: {', '.join(map(reached, by_seed))})"
    elif len(by_seed) > 2 and q1 is not None:
        text += f" ({_number(q1)}–{reached(q3)})"
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
            gal = paper(GAL_2017[strategy]) if strategy in GAL_2017 else ""
            if strategy in GAL_2017_ERROR_AT_1000:
                gal += f", {100 - GAL_2017_ERROR_AT_1000[strategy]:.2f}%"
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
    rank = {dataset: dict(zip(common, scipy.stats.rankdata([-content[s]["auc"] for s in common]).tolist()))
            for dataset, content in summary.items()}  # 1 = best; tied AUCs share their mean rank
    first = next(iter(rank.values()))
    rows = ["| strategy | " + " | ".join(f"{d}: rank (AUC vs random)" for d in summary) + " |",
            "|---|" + "---:|" * len(summary)]
    for strategy in sorted(common, key=first.get):
        cells = []
        for dataset, content in summary.items():
            d = content[strategy].get("vs_random")
            cells.append(f"{rank[dataset][strategy]:g}" + ("" if d is None else f" ({_difference(d['auc'], 100, ' pp')})"))
        rows.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    rows.append("| Spearman ρ with the first [95% interval] | "
                + " | ".join(spearman(first, r, common) for r in rank.values()) + " |")
    return "\n".join(rows)


def spearman(a: dict[str, float], b: dict[str, float], common: list[str]) -> str:
    """The Spearman rank correlation of two rankings of ``common`` (mid-ranks where tied: the Pearson
    correlation of the ranks) with its 95% interval: Fisher's z with Fieller, Hartley & Pearson's (1957)
    standard error sqrt(1.06 / (n - 3)), from n = 4 strategies."""
    n = len(common)
    if n < 2 or len({a[s] for s in common}) == 1 or len({b[s] for s in common}) == 1:
        return "—"  # a ranking with every strategy tied has no correlation
    rho = float(scipy.stats.pearsonr([a[s] for s in common], [b[s] for s in common]).statistic)
    if n < 4 or math.isclose(abs(rho), 1):
        return f"{rho:.2f}" + ("" if n < 4 else " (identical ranks)" if rho > 0 else " (reversed ranks)")
    z, half = math.atanh(rho), 1.96 * math.sqrt(1.06 / (n - 3))
    return f"{rho:.2f} [{math.tanh(z - half):.2f}, {math.tanh(z + half):.2f}], n = {n} strategies"


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


NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "mnist_unbalanced": "the unbalanced pool",
         "twomoons": "TwoMoons", "repeated_mnist": "Repeated-MNIST"}


def negated(d: dict | None) -> dict | None:
    """A paired difference a - b as b - a."""
    if d is None:
        return None
    flip = {None: None, "lower": "upper", "upper": "lower", "none": "none"}
    return {**d, "mean": -d["mean"], "by_seed": [-x for x in d["by_seed"]], "bound": flip[d["bound"]],
            "ci95": None if d["ci95"] is None else [-d["ci95"][1], -d["ci95"][0]]}


def verdict(d: dict | None, higher_is_better: bool) -> str:
    """What a paired difference (the first strategy's value less the second's) shows, read off its interval."""
    if d is None:
        return "not run on paired seeds yet"
    if d["ci95"] is None:
        return "too few seeds for an interval"
    if d["bound"] == "none":
        return "no answer: both sides missed the threshold on some seed"
    low, high = d["ci95"]
    if low <= 0 <= high:
        return "no difference shown"
    # a lower bound (only the first side censored) may hide a difference above zero, an upper bound one below
    if (d["bound"] == "lower" and high < 0) or (d["bound"] == "upper" and low > 0):
        return "no answer: a censored seed bounds the difference from the other side"
    return "ahead" if (low > 0) == higher_is_better else "behind"


def versus(summary: dict, a: str, b: str, threshold: int) -> str:
    """``a`` against ``b`` on paired seeds: AUC and labels to ``threshold`` %, each with its verdict."""
    if a not in summary or b not in summary:
        missing = a if a not in summary else b
        return f"`{missing}` has not run yet"
    if f"vs_{b}" in summary[a]:
        d = summary[a][f"vs_{b}"]
    elif f"vs_{a}" in summary[b]:
        d = {metric: negated(x) for metric, x in summary[b][f"vs_{a}"].items()}
    else:
        return f"no paired comparison of `{a}` with `{b}`"
    auc, labels_ = d["auc"], d[f"labels_to_{threshold}"]
    return (f"AUC {_difference(auc, 100, ' pp')} ({verdict(auc, True)}), labels to {threshold}% "
            f"{_difference(labels_, 1, '')} ({verdict(labels_, False)})")


def interval(values: list[float], scale: float = 1.0, places: int = 0) -> str:
    """Mean with its 95% t-interval (n - 1 df) from n >= 3 values, else the values."""
    xs = [scale * x for x in values]
    n, mean = len(xs), sum(xs) / len(xs)
    fmt = lambda x: f"{x:.{places}f}"  # noqa: E731
    if n < 3:
        return f"{fmt(mean)} (seeds: {', '.join(fmt(x) for x in xs)}), n = {n}"
    half = scipy.stats.t.ppf(0.975, n - 1) * math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n)
    return f"{fmt(mean)} [{fmt(mean - half)}, {fmt(mean + half)}], n = {n}"


def gal_error(strategy: str) -> str:
    """Gal et al. 2017's Table 2 test error (%) at 1,000 labels, or "—" for a strategy it has no row for."""
    return f"{GAL_2017_ERROR_AT_1000[strategy]:.2f}" if strategy in GAL_2017_ERROR_AT_1000 else "—"


def gal_tables(summary: dict) -> str:
    """Gal et al. 2017's Table 1 (labels to 10% and 5% test error) and Table 2 (test error at 1,000 labels)
    beside ours: means over seeds with 95% t-intervals; a seed that never reached an accuracy counts as the
    budget, and its row says so."""
    rows = ["| strategy | labels to 90%: ours | Gal et al. | labels to 95%: ours | Gal et al. | test error at 1,000: ours (%) | Gal et al. (%) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for strategy, marks in GAL_2017.items():
        if strategy not in summary:
            rows.append(f"| `{strategy}` | not run yet | {paper(marks).split(' / ')[0]} | | {paper(marks).split(' / ')[1]} | | "
                        f"{gal_error(strategy)} |")
            continue
        s, cells = summary[strategy], []
        for t in (90, 95):
            by_seed = [s["final_labels"] if x is None else x for x in s[f"labels_to_{t}_by_seed"]]
            cells += [("≥ " if None in s[f"labels_to_{t}_by_seed"] else "") + interval(by_seed),
                      paper(marks).split(" / ")[t == 95]]
        n, std = len(s["seeds"]), s["final_accuracy_std"]
        error = 100 * (1 - s["final_accuracy"])
        half = scipy.stats.t.ppf(0.975, n - 1) * 100 * std / math.sqrt(n) if n >= 3 else None
        spread = "" if half is None else f" [{error - half:.2f}, {error + half:.2f}]"
        rows.append(f"| `{strategy}` | " + " | ".join(cells) + f" | {error:.2f}{spread}, n = {n} | "
                    f"{gal_error(strategy)} |")
    return "\n".join(rows)


def expected_runs(params) -> dict[str, tuple[str, int]]:
    """Each dataset of the grids, with the name of its grid and how many runs the grid gives it."""
    runs = {}
    for name, grid in params.grids().items():
        for dataset in grid.datasets:
            runs[dataset] = (name, len(grid.strategies) * len(grid.seeds))
    for name, study in params.studies().items():
        for dataset in study.datasets:
            runs[f"{name}:{dataset}"] = (name, len(study.strategies) * len(study.seeds) * len(study.acquisition_sizes))
    return runs


def grid_status(params, summary: dict, studies: dict) -> str:
    """How far each grid has run: the runs in the metrics against the runs its params give it."""
    parts = []
    for key, (grid, total) in expected_runs(params).items():
        if ":" in key:
            name, dataset = key.split(":")
            done = sum(len(s["seeds"]) for by_strategy in studies.get(dataset, {}).values() for s in by_strategy.values())
            label = f"{NAMES.get(dataset, dataset)}, {'the acquisition-size study' if name == 'study' else 'one label a round'}"
        else:
            done, label = sum(len(s["seeds"]) for s in summary.get(key, {}).values()), NAMES.get(key, key)
        parts.append(f"{label} (`{grid}`) {done} of {total} runs")
    return "Runs in the metrics: " + "; ".join(parts) + "."


def questions(summary: dict, studies: dict) -> str:
    """The three questions the grids answer, each with its paired comparisons."""
    mnist, unbalanced = summary.get("mnist", {}), summary.get("mnist_unbalanced", {})
    lines = ["- **Does BALD beat max entropy and variation ratios on MNIST, as Gal et al. found?** "
             f"BALD against max entropy: {versus(mnist, 'bald', 'max_entropy', 95)}. "
             f"BALD against variation ratios: {versus(mnist, 'bald', 'variation_ratios', 95)}.",
             "- **Does BatchBALD beat BALD at acquisition size 10?** On MNIST: "
             f"{versus(mnist, 'batchbald', 'bald', 95)}."]
    repeated = studies.get("repeated_mnist", {}).get("b10", {})
    if "batchbald" in repeated and "bald" in repeated:
        b, a = repeated["batchbald"], repeated["bald"]
        by_seed = lambda s: {seed: math.inf if x is None else x  # noqa: E731
                             for seed, x in zip(s["seeds"], s["labels_to_90_by_seed"])}
        d = paired_difference(by_seed(b), by_seed(a), budget=b["final_labels"])
        lines[-1] += (f" On Repeated-MNIST: labels to 90% {_difference(d, 1, '')} ({verdict(d, False)}), accuracy at "
                      f"{b['final_labels']} {accuracy(b)} against {accuracy(a)} (mean ± standard deviation over "
                      f"{len(b['seeds'])} and {len(a['seeds'])} seeds).")
    lines.append("- **Does EPIG, with its targets from a target set of the test distribution, beat BALD on the "
                 f"unbalanced pool?** EPIG against BALD: {versus(unbalanced, 'epig', 'bald', 90)}. "
                 f"EPIG with pool targets (`epig_pool`) against BALD: {versus(unbalanced, 'epig_pool', 'bald', 90)}.")
    return "\n".join(lines)


def single(params, summary: dict, studies: dict) -> str:
    """The single grid's runs (one label a round) beside the same strategies in the dataset's replication grid,
    with what each costs: the compute seconds of a run (its curve's timings), mean over seeds."""
    rows = ["| strategy | acquisition size | seeds | accuracy at {n} | AUC | compute per run |", "|---|---:|---:|---:|---:|---:|"]
    for dataset in params.single.datasets:
        n = params.single.budget
        for strategy in params.single.strategies:
            for size in params.single.acquisition_sizes:
                s = (studies.get(dataset, {}).get(f"b{size}") or {}).get(strategy)
                if s:
                    rows.append(f"| `{strategy}` | {size} | {len(s['seeds'])} | {accuracy(s)} | {100 * s['auc']:.2f}% | "
                                f"{s['seconds'] / 60:.0f} min |")
            batch = summary.get(dataset, {}).get(strategy)
            if batch and rows[-1].startswith(f"| `{strategy}` |"):
                rows.append(f"| `{strategy}` | {params.learn[dataset].acquisition_size} | {len(batch['seeds'])} | "
                            f"{accuracy(batch)} | {100 * batch['auc']:.2f}% | |")
        rows[0] = rows[0].format(n=f"{n:,}")
    return "\n".join(rows) if len(rows) > 2 else "Not run yet."


def protocol(params) -> str:
    """The MNIST protocol, as params.yaml sets it."""
    learn = params.learn["mnist"]
    return (f"{learn.initial_per_class * 10} balanced initial labels; each round a random {learn.pool_subset:,} of "
            f"the pool scored with K = {learn.mc_samples} MC-dropout masks, the top {learn.acquisition_size} "
            f"labelled and a fresh CNN trained, to {learn.budget:,} labels; the test set predicted with "
            + ("dropout off" if params.report.prediction == "dropout_off" else
               f"the mean over {learn.test_mc_samples} masks"))


def shift_setting(params, dataset: str) -> str:
    """How a pool of the shift grid differs from its test set, as params.yaml sets it."""
    options = params.dataset(dataset).options
    rare = ", ".join(map(str, options.rare_classes or []))
    return (f"Classes {rare} thinned to {100 * options.rare_keep:.0f}% of their pool images; the test set keeps "
            f"every class. `epig` draws its targets from a target set of {options.n_target:,} unlabelled dev images "
            "with the test set's class mix, `epig_pool` from the pool.")


def readme_blocks(params, summary: dict, studies: dict) -> dict[str, str]:
    """Every generated block of the README's results, by name."""
    rare = getattr(params.dataset("mnist_unbalanced").options, "rare_classes", None)
    blocks = {"grids": grid_status(params, summary, studies), "questions": questions(summary, studies),
              "gal": gal_tables(summary.get("mnist", {})), "single": single(params, summary, studies),
              "protocol": protocol(params), "shift": shift_setting(params, "mnist_unbalanced")}
    for dataset in ("mnist", "mnist_unbalanced", "fashion_mnist", "twomoons"):
        blocks[dataset] = (replication(summary[dataset], dataset, rare if dataset == "mnist_unbalanced" else None)
                           if dataset in summary else "Not run yet.")
    repeated = studies.get("repeated_mnist", {})
    blocks["repeated_mnist"] = study(repeated, "repeated_mnist") if repeated else "Not run yet."
    both = {d: summary[d] for d in ("mnist", "fashion_mnist") if d in summary}
    blocks["ranks"] = ranks(both) if len(both) == 2 else "Not run yet: Fashion-MNIST has no runs."
    return blocks


BLOCK = re.compile(r"(<!-- results: (\w+) -->)\n((?:(?!<!-- results:).)*?)\n?(<!-- /results -->)", re.S)


def read_blocks(text: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in BLOCK.finditer(text)}


def write_blocks(text: str, blocks: dict[str, str]) -> str:
    unknown = sorted(set(read_blocks(text)) - set(blocks))
    if unknown:
        raise ValueError(f"the README has a block {unknown[0]!r} that nothing renders; blocks: {', '.join(blocks)}.")
    return BLOCK.sub(lambda m: f"{m.group(1)}\n{blocks[m.group(2)]}\n{m.group(4)}", text)


def metrics(root: Path) -> tuple[dict, dict]:
    """metrics/summary.json and metrics/study.json (empty where a file is missing)."""
    read = lambda name: json.loads((root / name).read_text()) if (root / name).is_file() else {}  # noqa: E731
    return read("metrics/summary.json"), read("metrics/study.json")


def main(readme: Path | None = typer.Option(None, help="rewrite this README's generated blocks in place")) -> None:
    params = load_params(Path("params.yaml"))
    summary, studies = metrics(Path("."))
    blocks = readme_blocks(params, summary, studies)
    if readme is not None:
        readme.write_text(write_blocks(readme.read_text(), blocks))
        return
    print("# Results tables\n\nWritten by `python tools/results_tables.py > docs/results.md` from the committed "
          "`metrics/summary.json` and `metrics/study.json`. " + CONVENTIONS)
    print(f"\n{blocks['grids']}\n\n## The three questions\n\n{blocks['questions']}")
    print("\n## Gal et al. 2017, Tables 1 and 2, beside ours\n\nMeans over seeds with 95% t-intervals (n − 1 df); "
          f"Gal et al. averaged their repetitions.\n\n{blocks['gal']}")
    for dataset, content in summary.items():
        entry = params.dataset(dataset) if dataset in params.datasets() else None
        print(f"\n## {dataset}\n\n" + replication(content, dataset, getattr(entry.options, "rare_classes", None)
                                                   if entry else None))
        print(f"\n**{dataset}: paired differences** (mean over the n seeds both ran [95% t-interval, n − 1 df]; "
              "below 3 seeds each seed's difference)\n")
        print(comparisons(content))
    for dataset, by_size in studies.items():
        if dataset not in params.single.datasets:
            print(f"\n## {dataset}: the acquisition-size study\n\n" + study(by_size, dataset))
    if set(studies) & set(params.single.datasets):
        print(f"\n## One label a round (the `single` grid)\n\n{blocks['single']}")
    by_dataset = dict(sorted(summary.items(), key=lambda item: item[0] != "mnist"))  # MNIST's ranks first
    if len(by_dataset) > 1:
        print("\n## Ranks across datasets\n\nBy AUC, among the strategies that every dataset ran; in brackets the "
              "paired AUC difference against random (mean over seeds [95% t-interval, n − 1 df]). Spearman's ρ compares "
              "each dataset's ranking with the first column's, its interval by Fisher's z with standard error "
              "√(1.06 / (n − 3)), n the strategies.\n")
        print(ranks(by_dataset))


if __name__ == "__main__":
    typer.run(main)
