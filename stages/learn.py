"""Stages learn, survey, shift, simulate, study and single: one dataset x strategy x seed active-learning
run, to the label budget.

With ``--acquisition-size`` it is a run of a study grid (``--study``: study or single): ``learn.<dataset>``
with that acquisition size (one of the grid's ``acquisition_sizes``) and the grid's ``budget``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd
import typer

from bal import strategies
from bal.config import STUDIES
from bal.errors import ConfigError
from bal.io import atomic_write_bytes, write_csv, write_json
from bal.loop import LoopSettings, Round, initial_indices, run
from bal.prepared import load_prepared
from common import environment, fails_cleanly, params_and_torch

app = typer.Typer(add_completion=False)

ROUND_FIELDS = ["index", "n_labelled", "accuracy", "nll", "accuracy_dropout_off",
                "train_seconds", "eval_seconds", "score_seconds", "select_seconds"]
EVALUATED = {"accuracy", "nll", "accuracy_dropout_off"}  # columns named after the split: test_accuracy, dev_nll, ...
COLUMNS = {"index": "round"}  # curve.csv's name of a Round field where it differs


@app.command()
@fails_cleanly
def main(
    dataset: str = typer.Option(...),
    strategy: str = typer.Option(...),
    seed: int = typer.Option(...),
    prepared: Path = typer.Option(..., help="folder written by the prepare stage"),
    out: Path = typer.Option(..., help="folder for curve.csv and acquired.csv"),
    checkpoint: Path = typer.Option(..., help="progress file, kept outside DVC's outputs so a killed run resumes"),
    acquisition_size: int | None = typer.Option(None, help="a study run: this size from <study>.acquisition_sizes"),
    study: str = typer.Option("study", help="with --acquisition-size: the grid of params.yaml it is from (study, single)"),
    params_path: Path = typer.Option(Path("params.yaml"), "--params"),
) -> None:
    params, device = params_and_torch(params_path)
    if dataset not in params.learn:
        raise ConfigError(f"--dataset {dataset!r} has no learn.{dataset} entry; datasets with one: {', '.join(params.learn)}.")
    if strategy not in strategies.names():
        raise ConfigError(f"--strategy {strategy!r}: unknown strategy; known strategies: {', '.join(strategies.names())}.")
    if study not in STUDIES:
        raise ConfigError(f"--study {study!r}: must be one of {', '.join(STUDIES)}.")
    learn = params.learn[dataset] if acquisition_size is None else params.study_learn(dataset, acquisition_size, study)
    split = load_prepared(prepared)
    params.check_run(dataset, strategy, learn, split, study=None if acquisition_size is None else study)
    make_model = learn.make_model(split.kind, tuple(split.pool_x.shape[1:]), split.classes)
    initial = initial_indices(split.pool_y, learn.initial_per_class, seed)
    settings = learn.loop_settings(strategy, seed, initial, params.strategy_options(strategy))
    rounds_total = math.ceil((learn.budget - len(settings.initial)) / learn.acquisition_size) + 1
    tag = f"{dataset}-{strategy}-{seed}" + ("" if acquisition_size is None else f"-b{acquisition_size}")
    env = environment(device)
    typer.echo(f"[{tag}] on {env['device']} ({env['device_name']}), {env['threads']} thread(s), torch {env['torch']}")
    fingerprint = _fingerprint(settings, learn, prepared, env)
    finished = _load_checkpoint(checkpoint, fingerprint)
    if finished:
        typer.echo(f"[{tag}] resuming after round {len(finished)} from {checkpoint}")
    columns = [f"{learn.evaluate_on}_{name}" if name in EVALUATED else COLUMNS.get(name, name) for name in ROUND_FIELDS]
    chosen = strategies.get(strategy)
    curve, acquired = [], []
    start, rounds_before = time.perf_counter(), len(finished)
    for r in itertools.chain(list(finished), run(split, make_model, settings, device, list(finished))):
        if r.index >= rounds_before:
            finished.append(r)
            _save_checkpoint(checkpoint, fingerprint, finished)
        curve.append([getattr(r, name) for name in ROUND_FIELDS])
        ceiling = strategies.past_ceiling(chosen, r.scores, learn.mc_samples)
        acquired += [(r.index, i, int(split.pool_y[i]), s, c) for i, s, c in zip(r.acquired, r.scores, ceiling)]
        if any(ceiling):
            typer.echo(f"[{tag}] warning: round {r.index + 1}: from pick {ceiling.index(True) + 1} of {len(ceiling)} the "
                       f"batch's joint mutual information exceeds {strategies.CEILING_FRACTION} log K (K = {learn.mc_samples}); later picks are "
                       "Monte-Carlo noise, and only more samples (mc_samples) lift the ceiling")
        elapsed = time.perf_counter() - start
        eta = elapsed / max(r.index + 1 - rounds_before, 1) * (rounds_total - r.index - 1)
        typer.echo(
            f"[{tag}] round {r.index + 1}/{rounds_total}  labels {r.n_labelled}  {learn.evaluate_on} acc {r.accuracy:.4f}  "
            f"nll {r.nll:.3f}  (train {r.train_seconds:.1f}s eval {r.eval_seconds:.1f}s "
            f"score {r.score_seconds:.1f}s select {r.select_seconds:.2f}s)  ETA {eta / 60:.1f} min"
        )
    write_csv(out / "acquired.csv", pd.DataFrame(acquired, columns=["round", "pool_index", "label", "score", "past_ceiling"]))
    write_json(out / "environment.json", env)
    write_csv(out / "curve.csv", pd.DataFrame(curve, columns=columns))
    checkpoint.unlink()


def _fingerprint(settings: LoopSettings, learn, prepared: Path, env: dict) -> str:
    """What a checkpoint must have been made with: these settings, this data, this code, this environment."""
    digest = hashlib.sha256(json.dumps([repr(settings), repr(learn), env], sort_keys=True).encode())
    digest.update((prepared / "manifest.json").read_bytes())
    for source in code_files():
        digest.update(source.read_bytes())
    return digest.hexdigest()


def code_files() -> list[Path]:
    """This script and every module of ``bal`` and ``stages/`` it has imported: the code a run executes
    (editing the plotting or summary code leaves a checkpoint usable)."""
    modules = [m for name, m in sys.modules.items() if name == "common" or name.split(".")[0] == "bal"]
    return [Path(__file__), *sorted({Path(m.__file__) for m in modules if getattr(m, "__file__", None)})]


def _load_checkpoint(path: Path, fingerprint: str) -> list[Round]:
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    if saved.get("fingerprint") != fingerprint:
        return []  # made with other params, data or code: start over
    return [Round(**r) for r in saved["rounds"]]


def _save_checkpoint(path: Path, fingerprint: str, rounds: list[Round]) -> None:
    data = {"fingerprint": fingerprint, "rounds": [dataclasses.asdict(r) for r in rounds]}
    atomic_write_bytes(path, json.dumps(data).encode())


if __name__ == "__main__":
    app()
