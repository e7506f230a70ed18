"""For maintainers: the stages DVC reports out of date, in the order to run them, one per line.

    python tools/grid_queue.py 'survey@fashion_mnist-*-0' 'learn@mnist-bald-[34]' > /tmp/queue.txt
    tools/grid_worker.sh /tmp/queue.txt &  tools/grid_worker.sh /tmp/queue.txt &

Each pattern (shell-style) takes the out-of-date stages it matches that no earlier pattern took, in
dvc.yaml's order. Needs the Makefile's environment (make setup).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess

import typer


def ordered(stages: list[str], stale: set[str], patterns: list[str]) -> list[str]:
    """The ``stale`` of ``stages`` that the ``patterns`` match: the first pattern's matches first,
    each group in the order of ``stages``, each stage once."""
    queue: list[str] = []
    for pattern in patterns:
        queue += [s for s in stages if s in stale and s not in queue and fnmatch.fnmatchcase(s, pattern)]
    return queue


def dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], check=True, capture_output=True, text=True).stdout


def main(patterns: list[str] = typer.Argument(..., help="shell-style stage patterns, first to run first")) -> None:
    stages = dvc("stage", "list", "--name-only").split()
    stale = set(json.loads(dvc("status", "--json")))
    print(*ordered(stages, stale, patterns), sep="\n")


if __name__ == "__main__":
    typer.run(main)
