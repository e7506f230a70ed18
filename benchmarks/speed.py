"""Speed of one active-learning round on MNIST, and of MC inference, on this machine.

    python benchmarks/speed.py [--prepared data/prepared/mnist] [--params params.yaml]

Prints pool images per second for the straightforward path (K full forward passes) and the
batched path (trunk once, all K masks in one matmul) with their ratio; seconds per round at
100, 500 and 1,000 labels (train / score / eval) with the MNIST settings of params.yaml; and the
projected minutes of a run from 20 to ``learn.mnist.budget`` labels.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import typer

from bal.inference import evaluate, predict_log_probs, predict_log_probs_naive
from bal.loop import fit, initial_indices
from common import mnist_setup


def seconds(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def main(
    prepared: Path = typer.Option(Path("data/prepared/mnist")),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
    naive_pool: int = typer.Option(500, help="pool size for the slow straightforward path"),
    fast_pool: int = typer.Option(10_000),
) -> None:
    learn, split = mnist_setup(params_path, prepared)
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), settings from {params_path} (learn.mnist)")

    torch.manual_seed(0)
    model = make_model()
    print("\nMC inference, pool images per second")
    print(f"{'K':>5} {'straightforward':>16} {'batched':>10} {'ratio':>7}")
    for k in (20, 100):
        masks = model.head.draw_masks(k, torch.Generator().manual_seed(0))
        slow = naive_pool / seconds(lambda: predict_log_probs_naive(model, split.pool_x[:naive_pool], masks))
        fast = fast_pool / seconds(lambda: predict_log_probs(model, split.pool_x[:fast_pool], k, masks=masks))
        print(f"{k:>5} {slow:>16.0f} {fast:>10.0f} {fast / slow:>6.1f}x")

    test_k = learn.loop_settings("bald", 0, [], {}).test_samples
    print(f"\nOne round (train {learn.train.steps} steps, score {learn.pool_subset or 'all'} pool points with"
          f" K={learn.mc_samples}, eval {len(split.test_y)} test images with K={test_k})")
    print(f"{'labels':>7} {'train s':>8} {'score s':>8} {'eval s':>7} {'total s':>8} {'test acc':>9}")
    measured = {}
    for n in (100, 500, 1000):
        labelled = initial_indices(split.pool_y, n // 10, seed=0)
        settings = learn.loop_settings("bald", 0, labelled, {})
        tic = time.perf_counter()
        model, generator = fit(split, labelled, make_model, settings, 0, torch.device("cpu"))
        train_s = time.perf_counter() - tic
        pool = split.pool_x[: learn.pool_subset or len(split.pool_x)]
        score_s = seconds(lambda: predict_log_probs(model, pool, learn.mc_samples, generator))
        tic = time.perf_counter()
        accuracy, _, _ = evaluate(model, split.test_x, split.test_y, settings.test_samples, generator)
        eval_s = time.perf_counter() - tic
        measured[n] = train_s + score_s + eval_s
        print(f"{n:>7} {train_s:>8.1f} {score_s:>8.1f} {eval_s:>7.1f} {measured[n]:>8.1f} {accuracy:>9.4f}")

    sizes = np.arange(learn.initial_per_class * 10, learn.budget + 1, learn.acquisition_size)
    total = np.interp(sizes, list(measured), list(measured.values())).sum()
    print(f"\nprojected run, {len(sizes)} rounds from {sizes[0]} to {sizes[-1]} labels: {total / 60:.1f} min")


if __name__ == "__main__":
    typer.run(main)
