"""The human-in-the-loop round trip: suggest, label the suggested items, suggest again."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from bal import strategies
from bal.config import load_params
from bal.identity import digest
from bal.inference import predict
from bal.loop import fit, pool_inputs
from bal.prepared import load_prepared

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
LABEL_STUDIO_OUTS = ("--tasks", "tasks.json", "--interface", "interface.xml", "--picture", "suggestions.png",
                     "--history", "history.csv")


def stage(name, *args, cwd, check=True):
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *args], cwd=cwd,
                            capture_output=True, text=True)
    assert (result.returncode == 0) == check, result.stderr
    return result


def the_stages_model(folder, dataset="mine"):
    """The suggest stage's model and the generator it goes on with, rebuilt as the stage builds them (a
    model is a pure function of the seed, 0 here as there, and the labelled set: every labelled item but the
    test set's, pool then validation, as no early stopping reads the validation set here)."""
    params, split = load_params(folder / "params.yaml"), load_prepared(folder / "prepared")
    learn, strategy = params.learn[dataset], params.suggest[dataset].strategy
    assert learn.train.eval_every == 0 and split.dev_x is None
    split = dataclasses.replace(split, pool_x=torch.cat([split.pool_x, split.val_x]),
                                pool_y=torch.cat([split.pool_y, split.val_y]))
    labelled = list(range(len(split.pool_y)))
    settings = learn.loop_settings(strategy, 0, labelled, params.strategy_options(strategy))
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    model, generator = fit(split, labelled, make_model, settings, 0, torch.device("cpu"))
    return split, settings, strategies.get(strategy), model, generator


def check_ranking(suggestions, folder):
    """The suggestions are the unlabelled items with the highest scores of the strategy under the stage's
    model and masks, best first, each with its own score, its predicted class and that class's probability
    averaged over the next test_mc_samples dropout masks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stage (compute.threads): the same float rounding
    try:
        check_ranking_with(suggestions, *the_stages_model(folder))
    finally:
        torch.set_num_threads(threads)


def check_ranking_with(suggestions, split, settings, strategy, model, generator):
    everything_U = torch.arange(len(split.unlabelled_x))
    pool = pool_inputs(model, split.unlabelled_x, everything_U, everything_U, strategy, {}, settings, generator)
    scores_U = strategies.score(strategy.name, pool)
    order_U = torch.sort(scores_U, descending=True, stable=True).indices
    best_B, size = order_U[: len(suggestions)], len(suggestions)
    assert (-scores_U[order_U[: size + 1]].diff() > 1e-6).all()  # no near tie that float rounding could flip
    assert suggestions.item.tolist() == [split.unlabelled_items[i] for i in best_B]
    assert suggestions.score.tolist() == pytest.approx(scores_U[best_B].tolist(), abs=1e-8)
    assert strategies.select(strategy.name, pool, size, generator=generator).indices == best_B.tolist()  # its draws
    prediction = predict(model, split.unlabelled_x[best_B], settings.test_samples, generator, dropout_off=True)
    predictive_B_C = prediction.log_probs_N_K_C.double().exp().mean(dim=1)  # the mean over the masks
    assert suggestions.predicted_class.tolist() == [split.class_names[c] for c in predictive_B_C.argmax(1).tolist()]
    probability_B = predictive_B_C.max(dim=1).values
    assert suggestions.probability.tolist() == pytest.approx(probability_B.tolist(), abs=1e-5)
    dropout_off_B = prediction.dropout_off_log_probs_N_C.double().exp().max(dim=1).values
    assert (dropout_off_B - probability_B).abs().max() > 1e-3  # the deterministic net's would not pass


def test_suggest_label_suggest_again(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mine"
    for name, brightness in (("dark", 50), ("light", 200)):
        for folder, n in ((root / name, 14), (root / "unlabelled", 6)):
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shift = 10 * i if folder.name == "unlabelled" else 0  # unlabelled items nearer and nearer the middle
                pixels = np.clip(rng.normal(brightness + shift * (1 if name == "dark" else -1), 20, (20, 20)), 0, 255)
                pixels = pixels.astype(np.uint8)
                tag = "u" if folder.name == "unlabelled" else ""
                Image.fromarray(pixels, "L").save(folder / f"{name}_{tag}{i}.png")  # the name says the true class
    params = {**PARAMS, "run": {**PARAMS["run"], "datasets": ["mine"]}}
    params["own"] = {"mine": {"source": "image_folder", "path": str(root), "n_validation": 4, "n_test": 4}}
    params["learn"] = {**PARAMS["learn"], "mine": {"budget": 20, "acquisition_size": 3, "mc_samples": 4,
                                                   "test_mc_samples": 50, "train": {"steps": 20, "learning_rate": 1e-4}}}
    # a small learning rate keeps the model unsure: saturated, every probability would be 1 and every score
    # float noise (about 1e-14), which no check of the ranking or the probabilities could tell apart
    params["suggest"] = {"mine": {"strategy": "bald"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def round_trip():
        stage("prepare", "--dataset", "mine", "--out", "prepared", cwd=tmp_path)
        log = stage("suggest", "--dataset", "mine", "--prepared", "prepared", "--out", "suggestions.csv", *LABEL_STUDIO_OUTS, cwd=tmp_path)
        split = load_prepared(tmp_path / "prepared")
        assert f"trained on {len(split.pool_y) + len(split.val_y)} labelled items (pool + val)" in log.stdout
        return pd.read_csv(tmp_path / "suggestions.csv"), len(split.pool_y) + len(split.val_y) + len(split.test_y)

    first, labelled = round_trip()
    assert list(first.columns) == ["rank", "item", "score", "predicted_class", "probability", "content"]
    assert first.content.tolist() == [digest((root / item).read_bytes()) for item in first.item]  # the file it saw
    assert first["rank"].tolist() == [1, 2, 3] and first.item.str.startswith("unlabelled/").all()
    check_ranking(first, tmp_path)
    # each row's prediction is of that row's item: an easy task, so it is the class the file name says
    assert (first.predicted_class == first.item.map(lambda item: Path(item).name.split("_")[0])).all()
    # the same items as Label Studio tasks, each showing its image file, pre-annotated with its prediction
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert [t["data"]["item"] for t in tasks] == first.item.tolist()
    assert [t["data"]["score"] for t in tasks] == first.score.tolist()
    assert [t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks] == [[c] for c in first.predicted_class]
    assert [t["predictions"][0]["score"] for t in tasks] == first.probability.tolist()
    assert all(t["data"]["image"] == "/data/local-files/?d=" + quote(os.path.relpath(root / t["data"]["item"], tmp_path))
               for t in tasks)
    interface = (tmp_path / "interface.xml").read_text()
    assert '<Choice value="dark"/>' in interface and '<Choice value="light"/>' in interface
    with Image.open(tmp_path / "suggestions.png") as picture:
        assert picture.format == "PNG" and picture.width > 300
    for item in first.item:  # label them from the known answers
        true_class = Path(item).name.split("_")[0]
        shutil.move(root / item, root / true_class / Path(item).name)
    second, labelled_after = round_trip()
    assert labelled_after == labelled + 3
    history = pd.read_csv(tmp_path / "history.csv")  # both rounds' items, kept
    assert history.item.tolist() == first.item.tolist() + second.item.tolist()
    assert len(second) == 3 and all((root / item).is_file() for item in second.item)  # still unlabelled
    check_ranking(second, tmp_path)  # among the items left, under the model trained on the new labels too


def test_suggest_needs_unlabelled_items(tmp_path):
    rows = ["a,label"] + [f"{i},{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    params = {**PARAMS, "own": {"t": {"source": "csv", "path": str(tmp_path / "t.csv"), "n_validation": 2, "n_test": 4}},
              "learn": {**PARAMS["learn"], "t": {"budget": 20}}, "suggest": {"t": {"strategy": "margin"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage("prepare", "--dataset", "t", "--out", "prepared", cwd=tmp_path)
    result = stage("suggest", "--dataset", "t", "--prepared", "prepared", "--out", "s.csv", *LABEL_STUDIO_OUTS, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "suggest.t: t has no unlabelled items" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "s.csv").exists()


def test_suggest_refuses_more_epig_targets_than_unlabelled_items(tmp_path):
    rows = ["a,label"] + [f"{i},{i % 2}" for i in range(40)] + [f"{i}," for i in range(3)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    params = {**PARAMS, "own": {"t": {"source": "csv", "path": str(tmp_path / "t.csv"), "n_validation": 2, "n_test": 4}},
              "learn": {**PARAMS["learn"], "t": {"budget": 20, "mc_samples": 4, "train": {"steps": 5}}},
              "suggest": {"t": {"strategy": "epig"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage("prepare", "--dataset", "t", "--out", "prepared", cwd=tmp_path)
    result = stage("suggest", "--dataset", "t", "--prepared", "prepared", "--out", "s.csv", *LABEL_STUDIO_OUTS, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and not (tmp_path / "s.csv").exists()
    assert result.stderr == "error: options.epig.targets = 100: must be at most the 3 unlabelled items of t, from which suggest draws them.\n"


@pytest.mark.parametrize("size, model, message", [
    (12, "auto", "learn.mine.model = 'auto': the CNN needs images of at least 16x16 and mine's are 12x12: set own.mine.size"),
    (20, "mlp", "learn.mine.model = 'mlp': mine holds images; use auto or cnn."),
])
def test_suggest_names_a_model_that_cannot_take_the_images(tmp_path, size, model, message):
    for name in ("a", "b", "unlabelled"):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (size, size), 40 * i).save(tmp_path / "mine" / name / f"{i}.png")
    params = {**PARAMS, "own": {"mine": {"source": "image_folder", "path": str(tmp_path / "mine"), "n_validation": 2,
                                         "n_test": 2}},
              "learn": {**PARAMS["learn"], "mine": {"budget": 8, "model": model}}, "suggest": {"mine": {"strategy": "margin"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage("prepare", "--dataset", "mine", "--out", "prepared", cwd=tmp_path)
    result = stage("suggest", "--dataset", "mine", "--prepared", "prepared", "--out", "s.csv", *LABEL_STUDIO_OUTS, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
