"""The grid engine (tools/grid.py) against plain `dvc repro`, on one 8-stage TwoMoons grid.

    python benchmarks/grid_engine.py                 # 4 strategies x 2 seeds, budget 40, in three fresh copies
    python benchmarks/grid_engine.py --steps 3000    # longer stages: the speedup where stages take a minute

Runs the same grid three ways, each in its own copy of the repository (committed files and the working
tree's changes, no results): sequential `dvc repro` of the 8 stages, tools/grid.py on a LocalCluster of 2
workers, and tools/grid.py on an external `dask scheduler` with 2 `dask worker`s started here. Prints each
wall time, the speedups over sequential, and the engine's per-stage overhead as tools/grid.py reports it.
Targets: a speedup of at least 0.9 x the workers where stages take a minute or more, and at most 1 s of
engine overhead per stage. Run it on an otherwise idle machine: other work on the cores is timed too.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ["random", "bald", "max_entropy", "badge"]


def sh(*cmd: str, cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def copy(into: Path, steps: int) -> Path:
    """The project's tracked and new files without results, as a git + DVC repository, its grid the 8 stages."""
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("data/runs/", "data/study/", "metrics/", "plots/")) \
                and name != "dvc.lock":
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    params = yaml.safe_load((into / "params.yaml").read_text())
    params["prepare"] = {"twomoons": params["prepare"]["twomoons"]}
    params["report"]["papers"] = []
    params["run"] = {"datasets": ["twomoons"], "strategies": STRATEGIES, "seeds": [0, 1]}
    params["survey"]["datasets"], params["study"]["datasets"] = [], []
    params["learn"]["twomoons"]["train"]["steps"] = steps
    (into / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=into)
    sh("git", "add", "-A", cwd=into)
    sh("git", "-c", "user.name=bench", "-c", "user.email=bench@bal.invalid", "commit", "-qm", "copy", cwd=into)
    sh("dvc", "repro", "prepare@twomoons", cwd=into)
    return into


def timed(*cmd: str, cwd: Path) -> tuple[float, str]:
    start = time.monotonic()
    out = sh(*cmd, cwd=cwd)
    return time.monotonic() - start, out


def main(steps: int = typer.Option(300, help="training steps per round (learn.twomoons.train.steps)")) -> None:
    stages = [f"learn@twomoons-{s}-{seed}" for s in STRATEGIES for seed in (0, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        repos = {name: copy(Path(tmp) / name, steps) for name in ("sequential", "local", "scheduler")}
        walls, reports = {}, {}
        walls["sequential"], _ = timed("dvc", "repro", *stages, cwd=repos["sequential"])
        walls["local"], reports["local"] = timed(sys.executable, "tools/grid.py", "--jobs", "2", cwd=repos["local"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dask = str(Path(sys.executable).parent / "dask")
        processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                      cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        time.sleep(3)
        processes += [subprocess.Popen([dask, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--no-dashboard"],
                                       cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        time.sleep(3)
        try:
            walls["scheduler"], reports["scheduler"] = timed(sys.executable, "tools/grid.py", "--scheduler",
                                                             f"tcp://127.0.0.1:{port}", cwd=repos["scheduler"])
        finally:
            for process in processes:
                process.terminate()
    commands = [float(m) for m in re.findall(r"done \S+ in (\d+) s", reports["local"])]
    print(f"8 TwoMoons stages ({steps} steps a round), {os.cpu_count()} cores; a stage's task "
          f"{min(commands):.0f}-{max(commands):.0f} s on the LocalCluster")
    for name, wall in walls.items():
        print(f"{name:10} {wall:7.1f} s   speedup {walls['sequential'] / wall:4.2f}"
              + (f"   {reports[name].strip().splitlines()[-1]}" if name in reports else ""))


if __name__ == "__main__":
    typer.run(main)
