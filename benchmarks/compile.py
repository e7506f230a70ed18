"""Training speed of the MNIST CNN, eager against ``torch.compile``, on this machine.

    python benchmarks/compile.py [--labels 1000] [--steps 200] [--repeats 4]

Trains one eager and one compiled model, each call continuing from the last, with
``bal.loop.train`` and the ``learn.mnist.train`` settings of params.yaml, except ``steps``, on the
first ``--labels`` MNIST pool images, in both precisions. The compiled model is warmed up before
timing, so the figures leave out the one-off compilation (printed apart). Calls alternate eager / compiled, so that a busy
machine slows both alike. Prints the median seconds per 100 steps and the eager / compiled ratio.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import torch
import typer

from bal.loop import train
from common import mnist_setup


def main(
    prepared: Path = typer.Option(Path("data/prepared/mnist")),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
    labels: int = typer.Option(1000, help="labelled images to train on"),
    steps: int = typer.Option(200, help="steps per timed call"),
    repeats: int = typer.Option(4, help="timed calls per variant"),
) -> None:
    learn, split = mnist_setup(params_path, prepared)
    torch.use_deterministic_algorithms(False)  # inductor's generated kernels are not covered by the flag
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    x, y_N = split.pool_x[:labels], split.pool_y[:labels]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {labels} labels, {steps} steps a call")
    for precision in ("bfloat16", "float32"):
        settings = dataclasses.replace(learn.train, steps=steps, epochs=0, precision=precision)

        def seconds(model: torch.nn.Module) -> float:
            tic = time.perf_counter()
            train(model, x, y_N, settings, torch.Generator().manual_seed(0))
            return time.perf_counter() - tic

        eager, compiled = make_model(), torch.compile(make_model())
        print(f"{precision}: first compiled call (compilation included) {seconds(compiled):.1f} s")
        times = {"eager": [], "compiled": []}
        for _ in range(repeats):
            times["eager"].append(seconds(eager))
            times["compiled"].append(seconds(compiled))
        medians = {name: statistics.median(t) * 100 / steps for name, t in times.items()}
        print(f"{precision}: s per 100 steps, median of {repeats}: eager {medians['eager']:.2f}, "
              f"compiled {medians['compiled']:.2f}; eager / compiled {medians['eager'] / medians['compiled']:.2f}")


if __name__ == "__main__":
    typer.run(main)
