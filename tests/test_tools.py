import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bal.config import load_params

ROOT = Path(__file__).parents[1]


def tool(name: str):
    """A script of tools/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


results_tables, preflight, grid = tool("results_tables"), tool("preflight"), tool("grid")


def entry(auc: float, vs_random: float | None = None) -> dict:
    d = None if vs_random is None else {"auc": {"mean": vs_random, "ci95": [vs_random - 0.01, vs_random + 0.01],
                                                "seeds": [0, 1, 2], "n": 3, "bound": None}}
    return {"auc": auc, "vs_random": d}


def test_a_difference_names_its_n_and_gives_no_interval_below_three_seeds():
    censored = {"mean": 250.0, "ci95": None, "by_seed": [200.0, 300.0], "n": 2, "bound": "lower"}
    assert results_tables._difference(censored, 1, "") == "≥ +250 (seeds: +200, +300), n = 2"
    three = {"mean": 0.02, "ci95": [0.01, 0.03], "by_seed": [0.01, 0.02, 0.03], "n": 3, "bound": None}
    assert results_tables._difference(three, 100, " pp") == "+2.0 pp [+1.0, +3.0], n = 3"


def test_labels_give_the_interquartile_range_from_three_seeds_on_and_each_seed_below():
    def s(by_seed, median, iqr):  # None: never reached within the 300 labels
        return {"labels_to_90": median, "labels_to_90_iqr": iqr, "labels_to_90_by_seed": by_seed, "final_labels": 300}
    assert results_tables.labels(s([150], 150, [150, 150]), 90) == "150"
    assert results_tables.labels(s([180, None], None, [210, None]), 90) == "— (seeds: 180, >300)"
    assert results_tables.labels(s([None, None], None, [None, None]), 90) == "—"
    assert results_tables.labels(s([100, 120, 140], 120, [110, 130]), 90) == "120 (110–130)"
    assert results_tables.labels(s([100, 120, 140, 160, 180], 140, [120, 160]), 90) == "140 (120–160)"
    assert results_tables.labels(s([100, 120, 140, None, None], 140, [120, None]), 90) == "140 (120–>300)"


def test_docs_results_is_what_the_tool_writes_from_the_committed_metrics():
    written = subprocess.run([sys.executable, "tools/results_tables.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    assert (ROOT / "docs" / "results.md").read_text() == written, \
        "docs/results.md is not what the metrics say; rerun python tools/results_tables.py > docs/results.md"


def test_ranks_over_the_strategies_every_dataset_ran_with_spearman_against_the_first():
    summary = {
        "a": {"random": entry(0.70), "x": entry(0.90, 0.20), "y": entry(0.80, 0.10), "w": entry(0.95, 0.25)},
        "b": {"random": entry(0.60), "x": entry(0.70, 0.10), "y": entry(0.85, 0.25), "z": entry(0.99, 0.39)},
    }
    rows = results_tables.ranks(summary).splitlines()
    assert rows[2:5] == [
        "| `x` | 1 (+20.0 pp [+19.0, +21.0], n = 3) | 2 (+10.0 pp [+9.0, +11.0], n = 3) |",
        "| `y` | 2 (+10.0 pp [+9.0, +11.0], n = 3) | 1 (+25.0 pp [+24.0, +26.0], n = 3) |",
        "| `random` | 3 | 3 |",
    ]
    # ranks a: x 1, y 2, random 3; b: y 1, x 2, random 3 (w is not in b, z not in a): rho = 1 - 6 * 2 / (3 * 8)
    assert rows[5] == "| Spearman ρ with the first [95% interval] | 1.00 | 0.50 |"  # 3 strategies: no interval


def test_spearman_interval_is_fishers_z_with_fieller_s_error():
    common = list("abcdefgh")
    first = {s: i + 1 for i, s in enumerate(common)}
    swapped = {**first, "a": 2, "b": 1}  # one swap of 8: rho = 1 - 6 * 2 / (8 * 63) = 0.976
    # z = atanh(0.97619) = 2.2094, half = 1.96 * sqrt(1.06 / 5) = 0.9024: tanh(1.3070) = 0.863, tanh(3.1118) = 0.996
    assert results_tables.spearman(first, swapped, common) == "0.98 [0.86, 1.00], n = 8 strategies"
    assert results_tables.spearman(first, first, common) == "1.00 (identical ranks)"


def test_verdicts_read_the_interval_and_know_which_way_is_better():
    d = lambda low, high, n=3, bound=None: {"mean": (low + high) / 2, "ci95": [low, high] if n >= 3 else None,  # noqa: E731
                                            "by_seed": [low, high], "n": n, "bound": bound}
    assert results_tables.verdict(d(0.01, 0.03), higher_is_better=True) == "ahead"
    assert results_tables.verdict(d(0.01, 0.03), higher_is_better=False) == "behind"  # more labels needed
    assert results_tables.verdict(d(-0.01, 0.03), higher_is_better=True) == "no difference shown"
    assert results_tables.verdict(d(-30, -10), higher_is_better=False) == "ahead"
    assert results_tables.verdict(d(1, 2, n=2), higher_is_better=True) == "too few seeds for an interval"
    assert results_tables.negated(d(-30, -10))["ci95"] == [10, 30]
    assert results_tables.negated(d(-30, -10, bound="lower"))["bound"] == "upper"
    # only the first side censored: its true labels are at least the budget, so "fewer labels" is not shown
    assert results_tables.verdict(d(-30, -10, bound="lower"), higher_is_better=False).startswith("no answer")
    assert results_tables.verdict(d(10, 30, bound="lower"), higher_is_better=False) == "behind"
    assert results_tables.verdict(d(10, 30, bound="upper"), higher_is_better=False).startswith("no answer")


def test_preflight_names_the_datasets_that_would_train_in_emulated_bf16():
    params = load_params(ROOT / "params.yaml")
    bf16 = preflight.emulated_bf16(params, native_bf16=False)
    assert "mnist" in bf16 and "twomoons" not in bf16  # TwoMoons trains in float32
    assert preflight.emulated_bf16(params, native_bf16=True) == []
    on_gpu = dataclasses.replace(params, compute=dataclasses.replace(params.compute, device="cuda"))
    assert preflight.emulated_bf16(on_gpu, native_bf16=False) == []


@pytest.mark.parametrize("section, entry, message", [
    ("suggest", {"mnist": {}}, "suggest.mnist.strategy is missing."),
    ("prepare", {"mnist": {"n_validation": 100}}, "prepare.mnist.source = None: must be one of torchvision, twomoons "
                                                   "(your own files go under own)."),
    ("own", {"mine": {"source": "csv"}}, "own.mine.path is missing."),
    ("own", {"mine": {"path": "data/sources/mine.csv"}}, "own.mine.source = None: must be one of csv, image_folder, npz "
                                                          "(built-in sources go under prepare)."),
])
def test_preflight_names_an_entry_that_dvc_yaml_cannot_be_parsed_with(tmp_path, section, entry, message):
    """dvc.yaml reads ${item.strategy}, ${item.source} and ${item.path}, so an entry without them breaks the
    parsing of the whole file and DVC never reaches a stage's own check: preflight, which make repro runs
    first, names the key."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params[section] = {**params.get(section, {}), **entry}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "preflight.py")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == f"error: {message}\n"


def test_the_grid_orders_stale_stages_by_pattern_then_by_dvc_yaml_each_once():
    stages = ["learn@mnist-bald-0", "learn@mnist-bald-1", "learn@mnist-random-0", "survey@fashion_mnist-bald-0",
              "survey@fashion_mnist-bald-1", "aggregate"]
    stale = set(stages) - {"learn@mnist-bald-0"}
    patterns = ["survey@*-1", "*-[01]", "learn@mnist-bald-*"]
    assert grid.ordered(stages, stale, patterns) == [
        "survey@fashion_mnist-bald-1", "learn@mnist-bald-1", "learn@mnist-random-0", "survey@fashion_mnist-bald-0",
    ]
    assert grid.ordered(stages, stale, []) == [s for s in stages if s in stale and s != "aggregate"]  # not aggregate


def test_the_grid_runs_a_stage_of_every_grid_of_runs_and_nothing_else():
    """Every stage group whose commands run learn.py (dvc.yaml) is a grid stage; summaries and prepares are not."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    runs_learn = {name for name, stage in spec.items() if "stages/learn.py" in str(stage.get("cmd", stage.get("do", {}).get("cmd")))}
    assert runs_learn == {"learn", "survey", "shift", "simulate", "study", "single"}
    stages = [f"{group}@d-s-0" for group in spec]
    assert grid.ordered(stages, set(stages), []) == [f"{group}@d-s-0" for group in spec if group in runs_learn]


def test_every_committed_ablation_has_its_params_file_commit_and_command():
    """Each run folder under data/ablations/ can be made again from the repository alone: its exact params
    file, whose first line names the commit, and either the tool's command in the file or the row of
    docs/ablations.md that gives it."""
    recipes = (ROOT / "docs" / "ablations.md").read_text()
    names = sorted(p.name for p in (ROOT / "data" / "ablations").iterdir() if p.is_dir())
    assert names
    for name in names:
        head = (ROOT / "docs" / "ablations" / f"{name}.yaml").read_text().splitlines()[:2]
        commit = re.search(r"commit ([0-9a-f]{10})\b", head[0])
        assert head[0].startswith(f"# Ablation {name}") and commit, name
        by_tool = f"{head[1]} ".startswith(f"#   python tools/ablation.py {name} ")
        assert by_tool or re.search(rf"^\| `{name}` \|.*\| `{commit.group(1)}` \|", recipes, re.MULTILINE), name


def test_equivalence_tells_a_comment_from_a_change_of_what_a_run_computes(tmp_path_factory):
    """tools/equivalence.py in a copy of the repository: a comment added to bald.py leaves every output
    byte-identical (exit 0); scoring with the predictive entropy instead is caught (exit 1)."""
    from test_pipeline import fresh_copy, sh

    repo = fresh_copy(tmp_path_factory)
    strategy = repo / "src" / "bal" / "strategies" / "bald.py"
    command = [sys.executable, "tools/equivalence.py", "--base", "HEAD", "--set", "learn.twomoons.budget=8",
               "--set", "learn.twomoons.train.steps=20", "learn@twomoons-bald-0"]
    original = strategy.read_text()
    strategy.write_text(original + "# a comment changes no result\n")
    same = sh(*command, cwd=repo, check=False)
    assert same.returncode == 0 and "every output is byte-identical" in same.stdout
    assert "learn@twomoons-bald-0 " in same.stdout and "acquired.csv" in same.stdout
    strategy.write_text(original.replace("scorer=mutual_information", "scorer=__import__('bal.information').information.predictive_entropy"))
    changed = sh(*command, cwd=repo, check=False)
    assert changed.returncode == 1 and "data/runs/twomoons/bald/0/acquired.csv" in changed.stdout
    assert "DIFFERENT" in changed.stdout and "of the outputs differ" in changed.stdout


def test_the_single_grid_s_block_sets_each_run_beside_its_batch_run_with_its_cost():
    params = load_params(ROOT / "params.yaml")
    run = {"seeds": [0], "final_accuracy": 0.9, "final_accuracy_std": 0.0, "auc": 0.8, "seconds": 5400.0}
    batch = {**run, "seeds": [0, 1, 2], "final_accuracy_std": 0.01, "auc": 0.79}
    assert results_tables.single(params, {}, {"mnist_unbalanced": {"b1": {}}}) == "Not run yet."
    rows = results_tables.single(params, {"mnist_unbalanced": {"epig": batch}},
                                 {"mnist_unbalanced": {"b1": {"epig": run}}}).splitlines()
    assert rows[2:] == ["| `epig` | 1 | 1 | 90.00% | 80.00% | 90 min |", "| `epig` | 10 | 3 | 90.00% ± 1.00 | 79.00% | |"]


def test_tied_aucs_share_their_mean_rank_and_spearman_correlates_the_ranks():
    summary = {
        "a": {"random": entry(0.70), "x": entry(0.90, 0.20), "y": entry(0.90, 0.20), "w": entry(0.80, 0.10)},
        "b": {"random": entry(0.60), "x": entry(0.70, 0.10), "y": entry(0.85, 0.25), "w": entry(0.99, 0.39)},
    }
    rows = results_tables.ranks(summary).splitlines()
    assert [row.split(" | ")[1].split()[0] for row in rows[2:6]] == ["1.5", "1.5", "3", "4"]
    # over (random, x, y, w): ranks a (4, 1.5, 1.5, 3), b (4, 3, 2, 1), both of mean 2.5; deviations' products sum
    # to 2.25 - 0.5 + 0.5 - 0.75 = 1.5, squares to 4.5 and 5: rho = 1.5 / sqrt(22.5) = 0.316; z = 0.3276,
    # half = 1.96 * sqrt(1.06) = 2.018: tanh(-1.690) = -0.934, tanh(2.346) = 0.982
    assert rows[6] == "| Spearman ρ with the first [95% interval] | 1.00 (identical ranks) | 0.32 [-0.93, 0.98], n = 4 strategies |"
    assert results_tables.spearman({"p": 1, "q": 1}, {"p": 1, "q": 2}, ["p", "q"]) == "—"


def test_gal_table_gives_t_intervals_counts_a_censored_seed_as_the_budget_and_marks_missing_rows():
    bald = {"labels_to_90_by_seed": [140, 150, 160], "labels_to_95_by_seed": [300, None, 320], "final_labels": 1000,
            "seeds": [0, 1, 2], "final_accuracy": 0.982, "final_accuracy_std": 0.001}
    rows = results_tables.gal_tables({"bald": bald, "mean_std": {**bald, "labels_to_95_by_seed": [300, 310, 320]}})
    rows = rows.splitlines()
    # 90%: mean 150, sd 10, t(0.975, 2) = 4.303: 150 ± 24.8; 95%: (300 + 1000 + 320) / 3 = 540, sd 398.5: ± 990;
    # error 1.80 ± 4.303 * 0.1 / sqrt(3) = ± 0.25
    assert rows[2] == "| `bald` | 150 [125, 175], n = 3 | 145 | ≥ 540 [-450, 1530], n = 3 | 335 | 1.80 [1.55, 2.05], n = 3 | 1.80 |"
    assert rows[5] == "| `mean_std` | 150 [125, 175], n = 3 | 230 | 310 [285, 335], n = 3 | 695 | 1.80 [1.55, 2.05], n = 3 | — |"
    assert rows[3].startswith("| `variation_ratios` | not run yet | 120 |")  # Gal et al.'s row without our runs
