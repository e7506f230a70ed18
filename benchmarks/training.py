"""Accuracy and training time of training and model settings on fixed MNIST labelled sets.

    python benchmarks/training.py --labels 100,300,1000 --seeds 0,1,2 \
        --setting steps=300 --setting steps=200,precision=bfloat16
    python benchmarks/training.py --acquired data/runs/mnist/bald/0 --labels 500,1000 --setting steps=600

Each ``--setting`` overrides fields of ``learn.mnist.train`` (params.yaml) and the model's widths
and dropout rates (``hidden``, ``p_in``, ``p_hidden`` of ``learn.mnist``). By default, for every
labelled-set size and seed the set is the class-balanced one ``initial_indices`` draws. With
``--acquired <runs>/mnist/<strategy>/<seed>`` it is the set that run had labelled at that size (its
initial set and the first acquired points, in order), the same for every seed: the seeds then vary
only the training (initialisation, batches, masks). Sets are paired across settings. The model is
trained as in round 0 of a run and evaluated on the dev split (the test set only where there is no dev
split: protocol choices are not made on the test set) with
``learn.mnist.test_mc_samples`` MC-dropout masks. Prints accuracy per seed, their mean, the mean
accuracy of the same models with dropout off (the deterministic prediction), and seconds of training.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import typer

from bal.config import Learn
from bal.prepared import Split
from bal.inference import evaluate
from bal.loop import TrainSettings, fit, initial_indices
from common import mnist_setup


MODEL_KEYS = ("hidden", "p_in", "p_hidden")  # the fields of ``Learn`` that shape the model


def parse_setting(text: str, base: Learn) -> Learn:
    """``base`` with each ``key=value`` of ``text`` set: a train setting or one of ``MODEL_KEYS``."""
    types = {f.name: f.type for f in dataclasses.fields(TrainSettings)}
    types |= {f.name: f.type for f in dataclasses.fields(Learn) if f.name in MODEL_KEYS}
    train, model = {}, {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise typer.BadParameter(f"{key} is not a train setting or a model key; known: {', '.join(types)}")
        converted = value if types[key] == "str" else (float(value) if types[key] == "float" else int(value))
        (model if key in MODEL_KEYS else train)[key] = converted
    return dataclasses.replace(base, train=dataclasses.replace(base.train, **train), **model)


def acquired_sets(run: Path, initial_per_class: int, split: Split) -> Callable[[int], list[int]]:
    """size -> the labelled set the run at ``run`` (a ``<strategy>/<seed>`` folder) had at that size."""
    order = initial_indices(split.pool_y, initial_per_class, seed=int(run.name))
    order += pd.read_csv(run / "acquired.csv")["pool_index"].tolist()

    def labelled(n: int) -> list[int]:
        if n > len(order):
            raise typer.BadParameter(f"{run} labelled {len(order)} points, fewer than {n}")
        return order[:n]
    return labelled


def main(
    setting: list[str] = typer.Option(["steps=300"], help="comma-separated overrides of learn.mnist.train and the model"),
    labels: str = typer.Option("100,300,1000"),
    seeds: str = typer.Option("0,1"),
    acquired: Path | None = typer.Option(None, help="a learn run's folder: use the sets it labelled"),
    prepared: Path = typer.Option(Path("data/prepared/mnist")),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    learn, split = mnist_setup(params_path, prepared)
    x, y, judged_on = (split.dev_x, split.dev_y, "dev") if split.dev_x is not None else (split.test_x, split.test_y, "test")
    seed_list = [int(s) for s in seeds.split(",")]
    run_set = acquired_sets(acquired, learn.initial_per_class, split) if acquired else None
    source = f"the sets {acquired} labelled" if acquired else "class-balanced random sets"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {source}; "
          f"{judged_on} accuracy % per seed {seed_list}")
    print(f"{'setting':<40} {'labels':>6} {'accuracy per seed':>24} {'mean':>6} {'dropout off':>11} {'train s':>8}")
    changes = [parse_setting(text, learn) for text in setting]  # every setting checked before any training
    for text, changed in zip(setting, changes):
        for n in (int(s) for s in labels.split(",")):
            accuracies, deterministic, seconds = [], [], []
            for seed in seed_list:
                labelled = run_set(n) if run_set else initial_indices(split.pool_y, n // 10, seed=seed)
                settings = changed.loop_settings("random", seed, labelled, {})
                tic = time.perf_counter()
                model, generator = fit(split, labelled, changed.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes), settings, 0, torch.device("cpu"))
                seconds.append(time.perf_counter() - tic)
                accuracy, _, accuracy_dropout_off = evaluate(model, x, y, settings.test_samples, generator)
                accuracies.append(100 * accuracy)
                deterministic.append(100 * accuracy_dropout_off)
            per_seed = " / ".join(f"{a:.1f}" for a in accuracies)
            print(f"{text:<40} {n:>6} {per_seed:>24} {statistics.mean(accuracies):>6.2f} "
                  f"{statistics.mean(deterministic):>11.2f} {statistics.median(seconds):>8.1f}", flush=True)


if __name__ == "__main__":
    typer.run(main)
