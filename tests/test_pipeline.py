"""End to end: the real DVC pipeline on a tiny configuration, in a temporary copy of the repository."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from bal.config import GRIDS, STUDIES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.smoke

TINY = [
    "run.seeds=[0,1]",
    "run.strategies=[random,max_entropy,bald,batchbald,power_bald]",
    "survey.strategies=[random,bald,power_bald]",
    "survey.seeds=[0]",
    "study.datasets=[twomoons]",
    "study.strategies=[bald,batchbald,power_bald]",
    "study.acquisition_sizes=[1,3]",
    "study.seeds=[0]",
    "study.budget=10",
    "learn.twomoons.budget=10",
    "learn.twomoons.train.steps=30",
    "learn.mnist.budget=40",
    "learn.mnist.pool_subset=200",
    "learn.mnist.mc_samples=4",
    "learn.mnist.train.steps=20",
]


def sh(*cmd, cwd, check=True):
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "bal tests"), ("EMAIL", "tests@bal.invalid"))}
    env = {**os.environ, **identity, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def fresh_copy(tmp_path_factory):
    """A git + DVC copy of the project's tracked (and new, unignored) files, without results."""
    copy = tmp_path_factory.mktemp("pipeline") / "bal"
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("data/runs/", "data/study/", "metrics/", "plots/")) and name != "dvc.lock":
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    sh("git", "init", "-q", cwd=copy)
    sh("git", "add", "-A", cwd=copy)
    sh("git", "commit", "-qm", "copy", cwd=copy)
    return copy


def prepare_only(repo, datasets):
    """Keep only these built-in datasets under prepare (every entry there is a stage), committed."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"] = {name: params["prepare"][name] for name in datasets}
    params["report"]["papers"] = [name for name in params["report"]["papers"] if name in datasets]
    for grid in (*GRIDS, *STUDIES):  # and no grid names a dataset that is gone
        params[grid]["datasets"] = [name for name in params[grid]["datasets"] if name in datasets]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", f"prepare only {', '.join(datasets)}", cwd=repo)


SURVEY = ["mnist"] if os.environ.get("BAL_MNIST_RAW") else []  # the smaller grid, where MNIST is at hand


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = fresh_copy(tmp_path_factory)
    prepare_only(repo, ["twomoons", *SURVEY])
    return repo


def test_experiment_runs_end_to_end(repo):
    survey = SURVEY
    args = ["run.datasets=[twomoons]", f"survey.datasets=[{','.join(survey)}]", *TINY]
    out = sh("dvc", "exp", "run", *[a for s in args for a in ("-S", s)], cwd=repo)
    assert "learn@twomoons-bald-0" in out.stdout

    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert set(summary["twomoons"]) == {"random", "max_entropy", "bald", "batchbald", "power_bald"}
    curve = pd.read_csv(repo / "data/runs/twomoons/bald/0/curve.csv")
    assert curve.n_labelled.tolist() == [4, 6, 8, 10]
    assert {"train_seconds", "score_seconds", "select_seconds", "eval_seconds", "test_nll"} <= set(curve.columns)
    acquired = pd.read_csv(repo / "data/runs/twomoons/bald/0/acquired.csv")
    assert len(acquired) == 6 and acquired.pool_index.is_unique
    plotted = pd.read_csv(repo / "plots/curves/twomoons.csv")
    assert list(plotted.columns) == ["n_labelled", "strategy", "seed", "accuracy"]
    assert plotted.strategy.unique().tolist() == ["random", "max_entropy", "bald", "batchbald", "power_bald"]
    figures = {p.name for p in (repo / "plots/figures").iterdir()}
    assert {"twomoons_curves.png", "twomoons_strategies.svg", "twomoons_bald_terms.png"} <= figures
    if survey:
        assert "survey@mnist-bald-0" in out.stdout
        assert set(summary["mnist"]) == {"random", "bald", "power_bald"}
        assert pd.read_csv(repo / "data/runs/mnist/bald/0/curve.csv").n_labelled.tolist() == [20, 30, 40]
        assert {"mnist_curves.png", "mnist_acquired_classes.png"} <= figures

    study = json.loads((repo / "metrics/study.json").read_text())
    assert set(study["twomoons"]) == {"b1", "b3"} and set(study["twomoons"]["b3"]) == {"bald", "batchbald", "power_bald"}
    assert pd.read_csv(repo / "data/study/twomoons/bald/b3/0/curve.csv").n_labelled.tolist() == [4, 7, 10]
    assert (repo / "plots/study/twomoons_curves.png").is_file()

    assert "learn.twomoons.budget" in sh("dvc", "params", "diff", cwd=repo).stdout
    assert "final_accuracy" in sh("dvc", "metrics", "show", cwd=repo).stdout
    assert "dvc_plots" in sh("dvc", "plots", "show", cwd=repo).stdout
    assert "data/" not in sh("dvc", "status", cwd=repo).stdout  # everything up to date

    # One strategy's option reaches that strategy's stages and the TwoMoons maps (which retrain them), no other.
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("power_bald:\n    beta: 1.0", "power_bald:\n    beta: 2.0"))
    stale = set(json.loads(sh("dvc", "status", "--json", cwd=repo).stdout))
    (repo / "params.yaml").write_text(params)
    runs = {"learn@twomoons-power_bald-0", "learn@twomoons-power_bald-1", *(f"survey@{d}-power_bald-0" for d in survey)}
    assert stale == runs | {"study@twomoons-power_bald-1-0", "study@twomoons-power_bald-3-0", "figures"}


def test_bad_param_fails_cleanly_without_output(repo):
    result = sh("dvc", "exp", "run", "-S", "learn.twomoons.acquisition_size=-2", "-S", "run.datasets=[twomoons]",
                "-S", "study.datasets=[twomoons]", "-S", "run.strategies=[bald]",
                "-S", "survey.datasets=[]",
                cwd=repo, check=False)
    assert result.returncode != 0
    assert "learn.twomoons.acquisition_size = -2: must be at least 1" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_own_table_simulated_then_suggested_through_dvc(tmp_path_factory):
    """A CSV under data/sources declared in params.yaml alone: its own grid (simulate, summarised by
    compare) and suggest run, and no stage of the replication grids, out of date as they are here;
    labelling the suggested rows reruns prepare and suggest, and the next rows differ."""
    repo = fresh_copy(tmp_path_factory)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    truth = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    labels = truth.copy()
    labels[100:] = ""  # 20 rows to suggest
    table = repo / "data" / "sources" / "tiny.csv"

    def write_table():
        pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": labels}).to_csv(table, index=False)

    write_table()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"] = {"twomoons": params["prepare"]["twomoons"]}
    params["report"]["papers"] = []  # mnist is not prepared here
    params["shift"]["datasets"], params["single"]["datasets"] = [], []
    params["own"] = {"tiny": {"source": "csv", "path": "data/sources/tiny.csv", "n_validation": 5, "n_test": 20}}
    params["learn"]["tiny"] = {"budget": 12, "acquisition_size": 3, "mc_samples": 4, "train": {"steps": 20}}
    params["run"]["datasets"], params["survey"]["datasets"] = ["twomoons"], []  # the replication grid of what is prepared
    params["study"] = {**params["study"], "datasets": ["twomoons"], "acquisition_sizes": [2], "seeds": [0], "budget": 6}
    params["simulate"] = {"datasets": ["tiny"], "strategies": ["random", "margin"], "seeds": [0]}
    params["suggest"] = {"tiny": {"strategy": "margin"}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh("dvc", "repro", "compare@tiny", "suggest@tiny", cwd=repo).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"prepare_own@tiny", "simulate@tiny-random-0", "simulate@tiny-margin-0", "compare@tiny", "suggest@tiny"}
    assert "learn@twomoons-bald-0" in json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)  # stale, not run
    assert pd.read_csv(repo / "data/own/tiny/margin/0/curve.csv").n_labelled.tolist() == [4, 7, 10, 12]
    compared = json.loads((repo / "metrics/own/tiny.json").read_text())["tiny"]
    assert sorted(compared) == ["margin", "random"] and compared["margin"]["seeds"] == [0]
    assert set(pd.read_csv(repo / "plots/own/tiny/tiny.csv").strategy) == {"margin", "random"}
    first = pd.read_csv(repo / "suggestions/tiny.csv")
    assert len(first) == 3 and first.item.str.startswith("line ").all()
    for item in first.item:  # label the suggested rows from the known answers
        row = int(item.split()[1]) - 2
        labels[row] = truth[row]
    write_table()
    out = sh("dvc", "repro", "suggest@tiny", cwd=repo).stdout
    assert "Running stage 'prepare_own@tiny'" in out and "Running stage 'suggest@tiny'" in out
    assert len(json.loads((repo / "data/prepared/tiny/manifest.json").read_text())["unlabelled_items"]) == 17
    second = pd.read_csv(repo / "suggestions/tiny.csv")
    assert len(second) == 3 and all(labels[int(item.split()[1]) - 2] == "" for item in second.item)  # still unlabelled rows


def test_own_labels_are_versioned_with_dvc_add(tmp_path_factory):
    """The recipe of data/sources/README.md: dvc add an image folder, label two images by moving them, dvc add
    again: git holds the .dvc file (DVC's own .gitignore keeps the images out), and dvc diff lists the moves.
    (A .gitignore of ours over data/sources would hide the folder from dvc diff, which respects it.)"""
    repo = fresh_copy(tmp_path_factory)
    root = repo / "data" / "sources" / "mine"
    for folder in ("cat", "dog", "unlabelled"):
        (root / folder).mkdir(parents=True)
        for i in range(3):  # each image its own content, as a photo has
            Image.new("L", (16, 16), 80 * i + {"cat": 1, "dog": 2, "unlabelled": 3}[folder]).save(root / folder / f"{folder}_{i}.png")
    sh("dvc", "add", "data/sources/mine", cwd=repo)
    assert sh("git", "status", "--porcelain", "data/sources", cwd=repo).stdout.split() == ["??", "data/sources/.gitignore",
                                                                                         "??", "data/sources/mine.dvc"]
    assert (repo / "data" / "sources" / ".gitignore").read_text() == "/mine\n"  # DVC keeps the images out of git
    sh("git", "add", "data/sources", cwd=repo)
    sh("git", "commit", "-qm", "my images", cwd=repo)
    for i in range(2):  # a labelling round
        (root / "unlabelled" / f"unlabelled_{i}.png").rename(root / "cat" / f"unlabelled_{i}.png")
    sh("dvc", "add", "data/sources/mine", cwd=repo)
    diff = json.loads(sh("dvc", "diff", "--json", cwd=repo).stdout)
    assert {(e["path"]["old"], e["path"]["new"]) for e in diff["renamed"]} == {
        (f"data/sources/mine/unlabelled/unlabelled_{i}.png", f"data/sources/mine/cat/unlabelled_{i}.png") for i in range(2)}
    assert not [e for e in diff["added"] + diff["deleted"] if e["path"].startswith("data/sources")]


def test_own_data_outside_data_sources_is_warned_about(tmp_path):
    x = np.arange(24)
    pd.DataFrame({"f": x, "label": x % 2}).to_csv(tmp_path / "t.csv", index=False)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["own"] = {"t": {"source": "csv", "path": str(tmp_path / "t.csv"), "n_validation": 2, "n_test": 4}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = sh(sys.executable, str(ROOT / "stages" / "prepare.py"), "--dataset", "t", "--out", "p", cwd=tmp_path)
    assert f"warning: own.t.path = '{tmp_path / 't.csv'}' is outside data/sources, so DVC will not version its labels" \
        in result.stderr
