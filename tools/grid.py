"""Run the grid's out-of-date stages on Dask: a LocalCluster by default, an existing scheduler, or Slurm.

    python tools/grid.py                                  # every out-of-date learn, survey, study and simulate stage
    python tools/grid.py 'learn@mnist-*' --jobs 2 --commit
    python tools/grid.py --scheduler tcp://host:8786      # workers you started (dask worker tcp://host:8786)
    python tools/grid.py --slurm --partition cpu --walltime 02:00:00 --memory 8GB --max-jobs 20

DVC cannot run one pipeline's stages in parallel, so each stage is one Dask task that records itself as
``dvc repro`` would: it hashes the stage's deps under DVC's repository lock, runs the stage's command
outside it, then records the outputs and those hashes in dvc.lock under the lock again. A dep edited
while the stage runs is therefore recorded as the version that ran, not the edited one, and ``dvc
status`` shows the stage out of date. (``dvc repro`` hashes the deps after the command.) Workers on
many machines share the repository folder (a cluster's home or project file system; on NFS set
``dvc config core.hardlink_lock true``).

A failed stage is reported with its name, exit status and last log lines while the others go on; the
command then exits 1, naming every failed stage. Finished stages are up to date, so a rerun skips them,
and a stage stopped halfway resumes from its checkpoint. ``--commit`` makes a git commit of each
finished stage (dvc.lock and its small outputs), with its wall time and CPU.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
GRID_STAGES = ("learn@", "survey@", "study@", "simulate@")
LOG_LINES = 20


@dataclass
class Finished:
    stage: str
    returncode: int
    worker: str
    started: float  # time.time() when the worker took it
    wall_s: float  # the whole task: hashing, the command, recording
    command_s: float  # the stage's command alone
    log_tail: str
    outs: list[str]
    cpu: str


def dvc(*args: str, root: Path) -> str:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"}).stdout


def ordered(stages: list[str], stale: set[str], patterns: list[str]) -> list[str]:
    """The ``stale`` grid stages of ``stages`` that ``patterns`` match (every one with none): the first
    pattern's matches first, each group in the order of ``stages``, each stage once."""
    queue: list[str] = []
    for pattern in patterns or ["*"]:
        queue += [s for s in stages if s in stale and s.startswith(GRID_STAGES) and s not in queue
                  and fnmatch.fnmatchcase(s, pattern)]
    return queue


def out_of_date(patterns: list[str], root: Path) -> list[str]:
    """The grid stages ``dvc status`` reports out of date, as :func:`ordered` orders them."""
    stale = set(json.loads(dvc("status", "--json", root=root) or "{}"))
    return ordered(dvc("stage", "list", "--name-only", root=root).split(), stale, patterns)


def run_stage(root: str, name: str) -> Finished:
    """One stage, recorded with the hashes its deps had when it started (the module docstring); runs on a worker.
    Whatever fails, DVC included, comes back as a failed stage with its message, never as the grid's end."""
    import torch
    from distributed import get_worker
    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.WARNING)  # its "Updating lock file" belongs to no one's log here
    started, start, command_s, outs = time.time(), time.monotonic(), 0.0, []
    log = Path(root) / ".dvc" / "tmp" / "grid" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Repo(root, _wait_for_lock=True) as repo:  # as dvc --wait-for-lock
            with repo.lock:
                (stage,) = repo.stage.collect(os.path.join(root, "dvc.yaml") + ":" + name)  # not the worker's cwd's
                stage.save_deps()
                stage.remove_outs(ignore_remove=False, force=False)
            outs = [str(out.def_path) for out in stage.outs]
            command_start = time.monotonic()
            with open(log, "w") as f:
                returncode = subprocess.run(stage.cmd, shell=True, cwd=stage.wdir, stdout=f, stderr=subprocess.STDOUT,
                                            env={**os.environ, "DVC_NO_ANALYTICS": "1"}).returncode
            command_s = time.monotonic() - command_start
            if returncode == 0:
                with repo.lock:
                    stage.save_outs()
                    stage.md5 = stage.compute_md5()
                    stage.commit()
                    stage.dump(update_pipeline=False)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_LINES:])
    except Exception as err:  # noqa: BLE001  (a DVC error is this stage's failure, reported with it)
        returncode, tail = 1, f"{type(err).__name__}: {err}"
    return Finished(name, returncode, get_worker().address, started, time.monotonic() - start, command_s, tail, outs,
                    torch.backends.cpu.get_cpu_capability())


def commit(finished: Finished, root: Path) -> None:
    message = (f"{finished.stage} finished: {int(finished.wall_s // 60)}m{int(finished.wall_s % 60)}s wall, "
               f"{os.cpu_count()} cores, {finished.cpu} CPU (tools/grid.py)")
    paths = ["dvc.lock", *finished.outs]
    for attempt in range(30):  # another git command may hold the index for a moment
        added = subprocess.run(["git", "add", "--", *paths], cwd=root, capture_output=True, text=True)
        done = added.returncode == 0 and subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=root,
                                                        capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(1)
    typer.echo(f"warning: git could not commit {finished.stage}; it is recorded in dvc.lock, commit it yourself", err=True)


def cluster(jobs: int, scheduler: str | None, slurm: bool, partition: str | None, walltime: str, memory: str,
            max_jobs: int, interface: str | None):
    """The Dask client and what to say about it: a LocalCluster of ``jobs`` single-threaded workers, the
    scheduler at ``scheduler``, or Slurm jobs of one worker each (at most ``max_jobs``)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    if slurm:
        from dask_jobqueue import SLURMCluster

        where = SLURMCluster(cores=1, processes=1, memory=memory, walltime=walltime, queue=partition, interface=interface)
        where.adapt(minimum_jobs=0, maximum_jobs=max_jobs)
        return Client(where), where
    where = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    return Client(where), where


def main(
    patterns: list[str] = typer.Argument(None, help="shell-style stage patterns (learn@mnist-*), the first pattern's "
                                                    "stages first; none: every grid stage"),
    jobs: int = typer.Option(os.cpu_count() or 1, envvar="JOBS", help="LocalCluster workers (one torch thread each)"),
    scheduler: str | None = typer.Option(None, help="an existing Dask scheduler, tcp://HOST:PORT"),
    slurm: bool = typer.Option(False, help="start the workers as Slurm jobs (dask-jobqueue)"),
    partition: str | None = typer.Option(None, help="--slurm: the partition (queue)"),
    walltime: str = typer.Option("04:00:00", help="--slurm: each worker job's time limit"),
    memory: str = typer.Option("8GB", help="--slurm: each worker job's memory"),
    max_jobs: int = typer.Option(20, help="--slurm: at most this many worker jobs at once"),
    interface: str | None = typer.Option(None, help="--slurm: the network interface workers listen on (lo, ib0, ...)"),
    commit_each: bool = typer.Option(False, "--commit", help="a git commit of each finished stage"),
) -> None:
    from dask.distributed import as_completed

    queue = out_of_date(patterns or [], ROOT)
    if not queue:
        typer.echo("every stage matched is up to date")
        return
    client, where = cluster(jobs, scheduler, slurm, partition, walltime, memory, max_jobs, interface)
    typer.echo(f"{len(queue)} stages on {client.scheduler.address}" +
               (f"; dashboard {client.dashboard_link}" if client.dashboard_link else ""))
    submitted, submitted_at = time.monotonic(), time.time()
    futures = [client.submit(run_stage, str(ROOT), name, key=f"stage-{name}", pure=False) for name in queue]
    failed, results = [], []
    progress = Progress(len(queue), sys.stdout.isatty())
    try:
        for future in as_completed(futures):
            finished = future.result()
            results.append(finished)
            if finished.returncode == 0:
                if commit_each:
                    commit(finished, ROOT)
                progress.line(f"done {finished.stage} in {finished.wall_s:.0f} s")
            else:
                failed.append(finished)
                progress.line(f"FAILED {finished.stage} (exit {finished.returncode}):\n{finished.log_tail}")
            running = sum(len(keys) for keys in client.processing().values())
            progress.update(len(results), len(failed), running, time.monotonic() - submitted)
    finally:
        client.close()
        if where is not None:
            where.close()
    waits, recording = overhead(results, submitted_at)
    typer.echo(f"{len(results)} stages in {time.monotonic() - submitted:.1f} s; engine overhead per stage (median): "
               f"{waits:.2f} s from submitted or the worker's last stage to its start, {recording:.2f} s hashing and recording")
    if failed:
        typer.echo(f"{len(failed)} of {len(queue)} stages failed: {', '.join(f.stage for f in failed)}", err=True)
        raise typer.Exit(1)


def overhead(results: list[Finished], submitted_at: float) -> tuple[float, float]:
    """The medians of each stage's wait for its worker (from the submit, or from the end of that worker's
    previous stage, to its start) and of the time its task spent beside the command (hashing, recording)."""
    waits, free_at = [], {}
    for f in sorted(results, key=lambda f: f.started):
        waits.append(f.started - free_at.get(f.worker, submitted_at))
        free_at[f.worker] = f.started + f.wall_s
    return statistics.median(waits), statistics.median(f.wall_s - f.command_s for f in results)


class Progress:
    """Stages done, failed, running and waiting, with an ETA from the pace of the finished ones: one line
    per stage in a log, and a status line that redraws itself on a terminal."""

    def __init__(self, total: int, interactive: bool):
        self.total, self.interactive = total, interactive

    def line(self, text: str) -> None:
        typer.echo(("\r\033[K" if self.interactive else "") + text)

    def update(self, finished: int, failed: int, running: int, elapsed: float) -> None:
        left = self.total - finished
        eta = elapsed / finished * left  # the pace so far, over however many workers ran
        text = (f"[{finished}/{self.total}] {finished - failed} done, {failed} failed, {running} running, "
                f"{left - running} waiting; ETA {eta / 60:.1f} min")
        if self.interactive:
            sys.stdout.write(f"\r\033[K{text}")
            sys.stdout.flush()
        else:
            typer.echo(text)


if __name__ == "__main__":
    typer.run(main)
