"""The human-in-the-loop round trip: suggest, label the suggested items, suggest again."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from bal.data import load_prepared

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def stage(name, *args, cwd, check=True):
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *args], cwd=cwd,
                            capture_output=True, text=True)
    assert (result.returncode == 0) == check, result.stderr
    return result


def test_suggest_label_suggest_again(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mine"
    for name, brightness in (("dark", 50), ("light", 200)):
        for folder, n in ((root / name, 14), (root / "unlabelled", 6)):
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.clip(rng.normal(brightness, 20, (20, 20)), 0, 255).astype(np.uint8)
                tag = "u" if folder.name == "unlabelled" else ""
                Image.fromarray(pixels, "L").save(folder / f"{name}_{tag}{i}.png")  # the name says the true class
    params = {**PARAMS, "run": {**PARAMS["run"], "datasets": ["mine"]}}
    params["prepare"] = {**PARAMS["prepare"], "datasets": [*PARAMS["prepare"]["datasets"], "mine"],
                         "mine": {"source": "image_folder", "path": str(root), "n_validation": 4, "n_test": 4}}
    params["learn"] = {**PARAMS["learn"], "mine": {"budget": 20, "acquisition_size": 3, "mc_samples": 4,
                                                   "train": {"steps": 20}}}
    params["suggest"] = {"mine": {"strategy": "bald"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def round_trip():
        stage("prepare", "--dataset", "mine", "--out", "prepared", cwd=tmp_path)
        stage("suggest", "--dataset", "mine", "--prepared", "prepared", "--out", "suggestions.csv", cwd=tmp_path)
        split = load_prepared(tmp_path / "prepared")
        return pd.read_csv(tmp_path / "suggestions.csv"), len(split.pool_y) + len(split.val_y) + len(split.test_y)

    first, labelled = round_trip()
    assert list(first.columns) == ["rank", "item", "score", "predicted_class", "probability"]
    assert first["rank"].tolist() == [1, 2, 3] and first.item.str.startswith("unlabelled/").all()
    assert first.probability.between(0.5, 1).all()
    # each row's prediction is of that row's item: an easy task, so it is the class the file name says
    assert (first.predicted_class == first.item.map(lambda item: Path(item).name.split("_")[0])).all()
    for item in first.item:  # label them from the known answers
        true_class = Path(item).name.split("_")[0]
        shutil.move(root / item, root / true_class / Path(item).name)
    second, labelled_after = round_trip()
    assert labelled_after == labelled + 3
    assert not set(first.item) & set(second.item) and len(second) == 3


def test_suggest_needs_unlabelled_items(tmp_path):
    rows = ["a,label"] + [f"{i},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    params = {**PARAMS, "prepare": {**PARAMS["prepare"], "datasets": [*PARAMS["prepare"]["datasets"], "t"],
                                    "t": {"source": "csv", "path": str(tmp_path / "t.csv"), "n_validation": 2, "n_test": 4}},
              "learn": {**PARAMS["learn"], "t": {"budget": 20}}, "suggest": {"t": {"strategy": "margin"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage("prepare", "--dataset", "t", "--out", "prepared", cwd=tmp_path)
    result = stage("suggest", "--dataset", "t", "--prepared", "prepared", "--out", "s.csv", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "suggest.t: t has no unlabelled items" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s.csv").exists()
