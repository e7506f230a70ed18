"""Stage suggest: train on every labelled item of a dataset but its test set, and rank its unlabelled ones.

Writes the next ``learn.<dataset>.acquisition_size`` items to label, best first: the item (a file
under the image folder, or a line of the CSV), its score under ``suggest.<dataset>.strategy``, and
the class the model predicts with its probability (MC-averaged); the same items as Label Studio
tasks, with the prediction as a pre-annotation, and that tool's labelling interface; and a picture
of them. Label them (in Label Studio and `python tools/labels.py pull`, or by moving the files into
class folders, or filling in the label cells), run ``dvc repro``, and the next batch comes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer

from bal import label_studio, plotting, strategies
from bal.errors import ConfigError
from bal.inference import predict_log_probs
from bal.identity import digest
from bal.information import mean_log_probs
from bal.io import atomic_write_bytes, write_csv
from bal.loop import fit, pool_inputs
from bal.prepared import load_prepared
from common import fails_cleanly, params_and_torch

app = typer.Typer(add_completion=False)


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(..., help="a dataset with an entry under suggest"),
    prepared: Path = typer.Option(..., help="folder written by its prepare stage"),
    out: Path = typer.Option(..., help="CSV of the suggested items"),
    tasks: Path = typer.Option(..., help="the same items as Label Studio tasks (JSON)"),
    interface: Path = typer.Option(..., help="Label Studio's labelling interface for them (XML)"),
    picture: Path = typer.Option(..., help="PNG of the suggested items"),
    history: Path = typer.Option(..., help="every item ever suggested, with its content's digest (kept: tools/labels.py "
                                           "takes labels for these alone)"),
    seed: int = typer.Option(0),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params, device = params_and_torch(params_path)
    if dataset not in params.suggest:
        raise ConfigError(f"--dataset {dataset!r} has no suggest.{dataset} entry.")
    strategy, learn = strategies.get(params.suggest[dataset].strategy), params.learn[dataset]
    split = load_prepared(prepared)
    if split.unlabelled_x is None:
        raise ConfigError(f"suggest.{dataset}: {dataset} has no unlabelled items (an image folder's path/unlabelled/, "
                          "or CSV rows with an empty label).")
    # every labelled item but the test set's: validation too, unless early stopping reads it
    held = ("val", "dev") if not learn.train.eval_every else ("dev",)
    parts = [name for name in ("pool", *held) if getattr(split, f"{name}_y") is not None]
    split = dataclasses.replace(split, pool_x=torch.cat([getattr(split, f"{name}_x") for name in parts]),
                                pool_y=torch.cat([getattr(split, f"{name}_y") for name in parts]))
    labelled = list(range(len(split.pool_y)))
    params.check_model(dataset, learn, split)
    options = params.strategy_options(strategy.name)
    targets = options.get("targets", 0) if "target_log_probs_M_K_C" in strategy.inputs else 0
    if targets > len(split.unlabelled_x):
        raise ConfigError(f"options.{strategy.name}.targets = {targets}: must be at most the {len(split.unlabelled_x)} "
                          f"unlabelled items of {dataset}, from which suggest draws them.")
    settings = learn.loop_settings(strategy.name, seed, labelled, options)
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    model, generator = fit(split, labelled, make_model, settings, 0, device)
    everything_U = torch.arange(len(split.unlabelled_x))
    input_options, selector_options = strategy.split_options(options)
    pool = pool_inputs(model, split.unlabelled_x, everything_U, everything_U, strategy, input_options, settings, generator)
    size = min(learn.acquisition_size, pool.size)
    batch = strategies.select(strategy.name, pool, size, generator=generator, **selector_options)
    predictive_B_C = mean_log_probs(predict_log_probs(model, split.unlabelled_x[batch.indices], settings.test_samples,
                                                      generator)).exp()
    probability_B, predicted_B = predictive_B_C.max(dim=1)
    table = pd.DataFrame({
        "rank": range(1, size + 1),
        "item": [split.unlabelled_items[i] for i in batch.indices],
        "score": batch.scores,
        "predicted_class": [split.class_names[c] for c in predicted_B.tolist()],
        "probability": probability_B.tolist(),
    })
    # the items as the source holds them (unnormalised), from the folder load_prepared has just verified
    stored_B = np.load(prepared / "unlabelled_x.npy", mmap_mode="r")[batch.indices]
    files = [Path(params.own[dataset]["path"]).expanduser() / item for item in table.item]
    table["content"] = [digest(file.read_bytes() if file.is_file() else stored.tobytes()) for file, stored in zip(files, stored_B)]
    rows = table.to_dict("records")
    for row, stored, file in zip(rows, stored_B, files):
        if split.kind == "image" and file.is_file():  # served from Label Studio's document root: this repository
            row["image"] = label_studio.local_file_url(os.path.relpath(file))
        elif split.kind == "image":  # an npz's image, within the task
            row["image"] = label_studio.png_data_url(stored)
        else:
            row["features"] = {f"feature {j}": float(value) for j, value in enumerate(stored.tolist(), start=1)}
    atomic_write_bytes(tasks, (json.dumps(label_studio.tasks(rows, split.kind, strategy.name), indent=1) + "\n").encode())
    atomic_write_bytes(interface, label_studio.label_config(list(split.class_names), split.kind).encode())
    figure = plotting.suggestions(table, stored_B if split.kind == "image" else None,
                                  f"{dataset}: the next {size} to label ({strategy.name})")
    atomic_write_bytes(picture, plotting.render(figure)["png"])
    seen = pd.read_csv(history, dtype=str, keep_default_na=False) if history.is_file() else table[["item", "content"]][:0]
    write_csv(history, pd.concat([seen, table[["item", "content"]]]).drop_duplicates(ignore_index=True))
    write_csv(out, table)
    typer.echo(f"suggest {dataset}: trained on {len(labelled)} labelled items ({' + '.join(parts)}), ranked {pool.size} unlabelled with "
               f"{strategy.name}; the next {size} -> {out}")


if __name__ == "__main__":
    app()
