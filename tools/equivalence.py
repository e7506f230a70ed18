"""Prove a change behaviour-preserving: run the same stages at two git revisions, on this machine,
and compare their outputs byte for byte (the timing columns of curve.csv aside).

    python tools/equivalence.py --base HEAD~1 --head WORKTREE \\
        --set learn.mnist.budget=50 learn@mnist-bald-0 'study@repeated_mnist-batchbald-10-0'

A stage renamed by the change is given as ``OLD=NEW`` (``survey@d-bald-0=shift@d-bald-0``): the base runs
OLD, the head NEW, and their outputs are compared in dvc.yaml's order, file by file below each output.

Each revision is checked out into a scratch git worktree (``WORKTREE`` is the working tree as it is,
uncommitted changes included), gets params.yaml with the ``--set`` overrides, and runs each stage's
command as its own dvc.yaml resolves it, with its ``src`` first on the import path. The prepare
stages that the listed stages read are run first at each revision and compared too. The two
revisions run side by side, one stage each (one torch thread each, from params.yaml's compute), or with
``--jobs 1`` one after the other.
Prints one line per output file and exits non-zero if any differs. Needs the Makefile's environment.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import typer
import yaml
from ablation import changed  # tools/ablation.py: the same dotted.key=value settings

ROOT = Path(__file__).resolve().parents[1]
WORKTREE = "WORKTREE"  # --head/--base value meaning the current working tree, uncommitted changes included


def checkout(revision: str, into: Path) -> None:
    """``revision`` (or the working tree as it is) as a scratch worktree at ``into``."""
    subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(into), "HEAD" if revision == WORKTREE else revision],
                   cwd=ROOT, check=True)
    if revision == WORKTREE:  # the uncommitted changes too: tracked edits and deletions, and new files
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, check=True, capture_output=True).stdout
        if diff:
            subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=into, input=diff, check=True)
        new = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split("\0")
        for name in filter(None, new):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)


def override(params_path: Path, settings: list[str]) -> None:
    """Apply ``key.sub=value`` settings (values read as YAML) to params.yaml."""
    params_path.write_text(yaml.safe_dump(changed(yaml.safe_load(params_path.read_text()), settings), sort_keys=False))


def resolve(tree: Path, names: list[str]) -> dict[str, tuple[str, list[str], list[str]]]:
    """``{stage: (command, output paths, prepared folders it reads)}`` as the tree's dvc.yaml resolves them."""
    from dvc.repo import Repo

    stages = {s.name: s for s in Repo(str(tree)).index.stages}
    missing = [n for n in names if n not in stages]
    if missing:
        raise typer.BadParameter(f"{tree}: no stage {missing[0]!r} in its dvc.yaml")
    return {n: (stages[n].cmd, [o.def_path for o in stages[n].outs],
                [d.def_path for d in stages[n].deps if d.def_path.startswith("data/prepared/")]) for n in names}


def run(tree: Path, name: str, cmd: str) -> float:
    """Run one stage's command in ``tree`` with its own ``src`` first on the import path; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "DVC_NO_ANALYTICS": "1"}
    log = tree / f".equivalence-{name.replace('@', '_')}.log"
    tic = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(cmd, shell=True, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-5:])
        raise RuntimeError(f"{name} failed in {tree} (exit {result.returncode}); the end of its log:\n{tail}")
    return time.perf_counter() - tic


def comparable(path: Path) -> bytes:
    """A file's bytes, less the timing columns where it is a curve.csv."""
    if path.name != "curve.csv":
        return path.read_bytes()
    curve = pd.read_csv(path, dtype=str, keep_default_na=False)
    buffer = io.StringIO()
    curve.drop(columns=[c for c in curve if c.endswith("_seconds")]).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def files(tree: Path, outs: list[str], names: list[str]) -> dict[str, Path]:
    """The files of each output, by the path of the output in ``names`` (the head's) that it stands in for."""
    found = {}
    for out, name in zip(outs, names):
        path = tree / out
        found.update({str(Path(name) / p.relative_to(path)) if p != path else name: p
                      for p in ([path] if path.is_file() else sorted(path.rglob("*"))) if p.is_file()})
    return found


def main(
    stages: list[str] = typer.Argument(..., help="stage names, as dvc stage list prints them; OLD=NEW for a renamed one"),
    base: str = typer.Option(..., help="the revision before the change"),
    head: str = typer.Option(WORKTREE, help=f"the revision after it ({WORKTREE}: the working tree as it is)"),
    set_: list[str] = typer.Option([], "--set", help="params override at both revisions, e.g. learn.mnist.budget=40"),
    keep: bool = typer.Option(False, help="keep the scratch worktrees"),
    jobs: int = typer.Option(2, min=1, max=2, help="stages at once: 2 runs the revisions side by side, 1 one after the other "
                                     "(beside a running grid)"),
) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="equivalence-"))
    trees = {"base": scratch / "base", "head": scratch / "head"}
    try:
        for side, revision in (("base", base), ("head", head)):
            checkout(revision, trees[side])
            override(trees[side] / "params.yaml", set_)
        pairs = [tuple(s.split("=", 1)) if "=" in s else (s, s) for s in stages]
        resolved = {side: resolve(trees[side], [p[i] for p in pairs]) for i, side in enumerate(trees)}
        plans = {side: {pair[1]: resolved[side][pair[i]] for pair in pairs} for i, side in enumerate(trees)}
        for old, new in pairs:
            if len(plans["base"][new][1]) != len(plans["head"][new][1]):
                raise typer.BadParameter(f"{old} and {new} have different numbers of outputs; nothing to compare one by one")
        needed = {side: sorted({p for _, _, reads in plan.values() for p in reads}) for side, plan in plans.items()}
        prepares = {side: resolve(trees[side], [f"prepare@{Path(p).name}" for p in needed[side]]) for side in trees}
        order = [*prepares["head"], *plans["head"]]
        todo = {side: {**prepares[side], **plans[side]} for side in trees}
        differ = 0
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for name in order:
                if name not in todo["base"]:
                    raise typer.BadParameter(f"{name} exists at {head} but not at {base}")
                seconds = dict(zip(trees, pool.map(lambda side: run(trees[side], name, todo[side][name][0]), trees)))
                outputs = {side: files(trees[side], todo[side][name][1], todo["head"][name][1]) for side in trees}
                for path in sorted(outputs["base"].keys() | outputs["head"].keys()):
                    a, b = outputs["base"].get(path), outputs["head"].get(path)
                    same = a is not None and b is not None and comparable(a) == comparable(b)
                    differ += not same
                    state = "identical" if same else ("only at " + ("head" if a is None else "base") if a is None or b is None
                                                      else "DIFFERENT")
                    print(f"{name:40} {path:70} {state}")
                print(f"{name:40} wall {seconds['base']:.0f} s at {base}, {seconds['head']:.0f} s at {head}", flush=True)
        print(f"{differ} of the outputs differ" if differ else "every output is byte-identical (timing columns aside)")
        raise typer.Exit(1 if differ else 0)
    finally:
        if not keep:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
