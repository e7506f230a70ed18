"""Run one ablation: the learn stage of one dataset with params.yaml changed by a few keys.

    python tools/ablation.py keras_init --set learn.mnist.init=keras --set learn.mnist.budget=400 \
        --set learn.mnist.evaluate_on=dev --strategies bald,random --seeds 0,1

It writes the exact params file to docs/ablations/<name>.yaml (params.yaml with the changes; its
first lines name the commit and the command), prepares the dataset afresh if a ``prepare.`` (or ``own.``) key
changed (into data/scratch/, git-ignored), and runs every strategy x seed, ``--jobs`` at a time
with one torch thread each, into data/ablations/<name>/<dataset>/<strategy>/<seed>/. Rerunning
the command reproduces the ablation; an interrupted run resumes from its checkpoint.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]


def changed(params: dict, assignments: list[str]) -> dict:
    """``params`` with each ``dotted.key=value`` (value read as YAML) set."""
    params = copy.deepcopy(params)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {assignment!r}: expected key=value")
        *parents, last = key.split(".")
        node = params
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise typer.BadParameter(f"--set {assignment!r}: params.yaml has no mapping {part!r} on that path")
            node = node[part]
        node[last] = yaml.safe_load(value)
    return params


def main(
    name: str = typer.Argument(..., help="the ablation's name: its params file and output folder"),
    set_: list[str] = typer.Option([], "--set", help="dotted.key=value, as many as needed"),
    dataset: str = typer.Option("mnist"),
    strategies: str = typer.Option("bald,random"),
    seeds: str = typer.Option("0,1"),
    jobs: int = typer.Option(2, help="runs side by side"),
) -> None:
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = changed(base, set_)
    commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    command = " ".join(shlex.quote(a) for a in ["python", "tools/ablation.py", *sys.argv[1:]])
    params_path = ROOT / "docs" / "ablations" / f"{name}.yaml"
    params_path.parent.mkdir(parents=True, exist_ok=True)
    params_path.write_text(f"# Ablation {name}, made at commit {commit} with:\n#   {command}\n"
                           + yaml.safe_dump(params, sort_keys=False, width=120))

    prepared = ROOT / "data" / "prepared" / dataset
    if any(params.get(group, {}).get(dataset) != base.get(group, {}).get(dataset) for group in ("prepare", "own")):
        prepared = ROOT / "data" / "scratch" / "ablations" / name / "prepared" / dataset
        subprocess.run([sys.executable, "stages/prepare.py", "--dataset", dataset, "--out", str(prepared),
                        "--params", str(params_path)], cwd=ROOT, check=True)

    def learn(strategy_seed: tuple[str, str]) -> str:
        strategy, seed = strategy_seed
        out = ROOT / "data" / "ablations" / name / dataset / strategy / seed
        checkpoint = ROOT / "data" / "checkpoints" / f"ablation-{name}-{dataset}-{strategy}-{seed}.json"
        tic = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "stages/learn.py", "--dataset", dataset, "--strategy", strategy, "--seed", seed,
             "--prepared", str(prepared), "--out", str(out), "--checkpoint", str(checkpoint), "--params", str(params_path)],
            cwd=ROOT, capture_output=True, text=True,
        )
        if result.returncode:
            return f"{name} {strategy} {seed}: failed\n{result.stderr}"
        return f"{name} {strategy} {seed}: {time.perf_counter() - tic:.0f} s wall -> {out.relative_to(ROOT)}"

    runs = [(strategy, seed) for seed in seeds.split(",") for strategy in strategies.split(",")]
    with ThreadPoolExecutor(jobs) as pool:
        for line in pool.map(learn, runs):
            typer.echo(line)


if __name__ == "__main__":
    typer.run(main)
