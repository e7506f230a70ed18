"""Run the grid's out-of-date stages on Dask: a LocalCluster by default, an existing scheduler, or Slurm.

    python tools/grid.py                                  # every out-of-date stage of a grid (learn@, survey@, ...)
    python tools/grid.py 'learn@mnist-*' --jobs 2 --commit
    python tools/grid.py --scheduler tcp://host:8786      # workers you started (dask worker tcp://host:8786)
    python tools/grid.py --slurm --partition cpu --walltime 02:00:00 --memory 8GB --max-jobs 20

Each stage is one Dask task that records itself in dvc.lock as ``dvc repro`` records a stage of one
command (our grid's stages; no run cache, no frozen stages): it hashes the stage's deps under DVC's
repository lock, runs the command outside it, then records the outputs and those hashes under the lock
again. A dep edited while the stage runs is therefore recorded as it was when the stage started, and
``dvc status`` shows the stage out of date; ``dvc repro --single-item`` side by side would record the
edited version as if it had run, since it hashes the deps after the command. A stage that another run
recorded meanwhile is skipped, and one whose run folder a ``dvc repro`` beside the grid is reading (of
``aggregate``, say) waits for it. Nothing stops two grids on different machines from running one stage at
once: run one grid per repository. Workers on many machines share the repository folder (a cluster's
home or project file system; on NFS set ``dvc config core.hardlink_lock true``).

A failed stage is reported with its name, exit status and last log lines while the others go on; the
command then exits 1, naming every failed stage. Finished stages are up to date, so a rerun skips them,
and a stage stopped halfway resumes from its checkpoint. ``--commit`` makes a git commit of each
finished stage (dvc.lock and its small outputs), with its wall time and its CPU's cores, model and bf16
kernels (the model name that the run's environment.json records). A stage resumes from its
checkpoint on the same CPU kind and torch build (its checkpoint records them); elsewhere it starts over.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from bal.config import STUDIES
from bal.results import STAGES

ROOT = Path(__file__).resolve().parents[1]
GRID_STAGES = tuple(f"{stage}@" for stage in (*STAGES.values(), *STUDIES))  # learn@, survey@, shift@, ... single@
LOG_LINES = 20
PATH_LOCK_POLL_S = 2


@dataclass
class Finished:
    stage: str
    returncode: int
    worker: str
    started: float  # time.time() when the worker took it
    wall_s: float  # the whole task: hashing, the command, recording
    command_s: float  # the stage's command alone
    log_tail: str
    outs: list[str]  # its outputs that git keeps (cache: false)
    cpu: str  # the worker's: its cores, model name and bf16 kernels
    skipped: bool = False  # up to date when the worker took it: another run had recorded it


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


def out_of_date(patterns: list[str], root: Path) -> tuple[list[str], list[str]]:
    """The grid stages ``dvc status`` reports out of date, as :func:`ordered` orders them, and the prepare
    stages it reports out of date (whose data the grid would read)."""
    stale = set(json.loads(dvc("--wait-for-lock", "status", "--json", root=root) or "{}"))
    stages = dvc("--wait-for-lock", "stage", "list", "--name-only", root=root).split()
    return ordered(stages, stale, patterns), sorted(s for s in stale if s.startswith(("prepare@", "prepare_own@")))


def run_stage(root: str, name: str) -> Finished:
    """One stage, recorded with the hashes its deps had when it started (the module docstring); runs on a worker.
    Whatever fails, DVC included, comes back as a failed stage with its message, never as the grid's end."""
    started, start, command_s, outs, cpu, worker = time.time(), time.monotonic(), 0.0, [], "", ""
    log = Path(root) / ".dvc" / "tmp" / "grid" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        import torch
        from distributed import get_worker
        from dvc.repo import Repo

        logging.getLogger("dvc").setLevel(logging.WARNING)  # its "Updating lock file" belongs to no one's log here
        worker = get_worker().address
        bf16 = "AMX" if torch.cpu._is_amx_tile_supported() else "AVX512-BF16" if torch.cpu._is_avx512_bf16_supported() \
            else "no native bf16"
        cpu = f"{len(os.sched_getaffinity(0))} cores, {stage_common(root).cpu_model()}, {bf16}"
        with Repo(root, _wait_for_lock=True) as repo:  # as dvc --wait-for-lock
            def begin():  # the stage with its deps hashed and its outs removed, or None where it is up to date
                (stage,) = repo.stage.collect(os.path.join(root, "dvc.yaml") + ":" + name)  # not the worker's cwd's
                if not stage.changed():
                    return None
                stage.save_deps()
                stage.remove_outs(ignore_remove=False, force=False)
                return stage

            def record(stage):
                stage.save_outs()
                stage.commit()
                stage.dump(update_pipeline=False)

            stage = locked(repo, begin, f"{name} (to start)")
            if stage is None:
                return Finished(name, 0, worker, started, 0.0, 0.0, "", [], cpu, skipped=True)
            outs = [str(out.def_path) for out in stage.outs if not out.use_cache]
            command_start = time.monotonic()
            with open(log, "w") as f:  # exec: the stage's own process, which dies with its worker (die_with_parent)
                returncode = subprocess.run(f"exec {stage.cmd}", shell=True, cwd=stage.wdir, stdout=f,
                                            stderr=subprocess.STDOUT, env={**os.environ, "DVC_NO_ANALYTICS": "1"},
                                            preexec_fn=die_with_parent).returncode
            command_s = time.monotonic() - command_start
            if returncode == 0:
                locked(repo, lambda: record(stage), f"{name} (to record its run)")
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-LOG_LINES:])
    except Exception as err:  # noqa: BLE001  (a DVC error is this stage's failure, reported with it)
        returncode, tail = 1, f"{type(err).__name__}: {err} (log: {log})"
    return Finished(name, returncode, worker, started, time.monotonic() - start, command_s, tail, outs, cpu)


def locked(repo, action, what: str):
    """``action()`` under DVC's repository lock, retried while another live DVC process holds a lock on one
    of the stage's paths (``what``: the stage and the step, for the message): a ``dvc repro aggregate`` beside the grid reads every run folder while its
    command runs, outside the repository lock, and DVC refuses a path lock at once, whereas it waits for the
    repository lock. The repository lock is let go between tries, so that the other process can finish;
    the first wait is reported on stderr with DVC's message, which names the process. It waits as long as
    that process runs: giving up would throw away a finished run."""
    from dvc.lock import LockError

    waiting = False
    while True:
        with repo.lock:
            try:
                return action()
            except LockError as err:  # the repository lock is held here, so this is a path's
                if not waiting:
                    print(f"{what} waits for a lock on its paths: {' '.join(str(err).split())}", file=sys.stderr,
                          flush=True)
                waiting = True
        time.sleep(PATH_LOCK_POLL_S)


def stage_common(root: str):
    """The stages' stages/common.py, loaded by path under its own name (a worker's ``common`` may be another)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bal_stage_common", os.path.join(root, "stages", "common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def die_with_parent() -> None:
    """In a stage's process before it starts: SIGTERM when its worker goes (Linux), so that a grid stopped
    by a signal leaves no stage running on behind it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def interrupted(*_) -> None:
    """SIGTERM (a scheduler's, a kill) as Ctrl-C: the grid closes its cluster, and the stages die with it."""
    raise KeyboardInterrupt


def failure(name: str, err: BaseException) -> Finished:
    """A stage whose task never came back (its worker died, or the task could not run there)."""
    return Finished(name, -1, "", time.time(), 0.0, 0.0, f"{type(err).__name__}: {err}", [], "")


def commit(finished: Finished, root: Path) -> None:
    """A git commit of dvc.lock and the stage's small outputs, under DVC's lock so that no worker is writing
    dvc.lock meanwhile (it holds the entries of stages that finished since the last commit too)."""
    from dvc.repo import Repo

    message = (f"{finished.stage} finished: {int(finished.wall_s // 60)}m{int(finished.wall_s % 60)}s wall, "
               f"{finished.cpu} (tools/grid.py)")
    paths = ["dvc.lock", *finished.outs]
    with Repo(str(root), _wait_for_lock=True) as repo, repo.lock:
        for _ in range(30):  # another git command may hold the index for a moment
            result = subprocess.run(["git", "add", "--", *paths], cwd=root, capture_output=True, text=True)
            if result.returncode == 0:
                result = subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=root,
                                        capture_output=True, text=True)
            if result.returncode == 0 or "index.lock" not in result.stderr:
                break
            time.sleep(1)
    if result.returncode != 0:
        typer.echo(f"warning: git could not commit {finished.stage} ({result.stderr.strip()}); it is recorded in "
                   "dvc.lock, commit it yourself", err=True)


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
        where.scale(jobs=max_jobs)  # adapt() would size the cluster from a guess at the stages' length
        return Client(where), where
    where = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    return Client(where), where


def main(
    patterns: list[str] = typer.Argument(None, help="shell-style stage patterns (learn@mnist-*), the first pattern's "
                                                    "stages first; none: every grid stage"),
    jobs: int = typer.Option(len(os.sched_getaffinity(0)), envvar="JOBS", help="LocalCluster workers (one torch thread each)"),
    scheduler: str | None = typer.Option(None, help="an existing Dask scheduler, tcp://HOST:PORT"),
    slurm: bool = typer.Option(False, help="start the workers as Slurm jobs (dask-jobqueue)"),
    partition: str | None = typer.Option(None, help="--slurm: the partition (queue)"),
    walltime: str = typer.Option("04:00:00", help="--slurm: each worker job's time limit"),
    memory: str = typer.Option("8GB", help="--slurm: each worker job's memory"),
    max_jobs: int = typer.Option(20, help="--slurm: at most this many worker jobs at once"),
    interface: str | None = typer.Option(None, help="--slurm: the network interface workers listen on (lo, ib0, ...)"),
    commit_each: bool = typer.Option(False, "--commit", help="a git commit of each finished stage"),
) -> None:
    import importlib.util
    import uuid

    import cloudpickle
    import dask
    from dask.distributed import as_completed

    queue, upstream = out_of_date(patterns or [], ROOT)
    if upstream:
        typer.echo(f"error: {', '.join(upstream)} out of date; run dvc repro --glob 'prepare*@*' first (make repro "
                   "does), or the grid would train on the old data.", err=True)
        raise typer.Exit(2)
    if not queue:
        typer.echo("no stage out of date" + (f" matches {' '.join(patterns)}" if patterns else ""))
        return
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers elsewhere cannot import this script
    signal.signal(signal.SIGTERM, interrupted)
    dask.config.set({"distributed.scheduler.worker-saturation": 1.0})  # a worker takes its next stage when free
    client, where = cluster(jobs, scheduler, slurm, partition, walltime, memory, min(max_jobs, len(queue)), interface)
    dashboard = f"; dashboard {client.dashboard_link}" if importlib.util.find_spec("bokeh") else ""
    typer.echo(f"{len(queue)} stages on {client.scheduler.address}{dashboard}")
    submitted, submitted_at = time.monotonic(), time.time()
    names = {client.submit(run_stage, str(ROOT), name, key=f"stage-{name}-{uuid.uuid4().hex[:8]}"): name for name in queue}
    failed, results = [], []
    progress = Progress(len(queue), sys.stdout.isatty())
    try:
        for future in as_completed(names):
            try:
                finished = future.result()
            except Exception as err:  # noqa: BLE001  (its worker died, or could not run it: this stage's failure)
                finished = failure(names[future], err)
            results.append(finished)
            if finished.skipped:
                text = f"up to date {finished.stage} (recorded by another run)"
            elif finished.returncode == 0:
                if commit_each:
                    commit(finished, ROOT)
                text = f"done {finished.stage} in {finished.wall_s:.0f} s"
            else:
                failed.append(finished)
                text = f"FAILED {finished.stage} (exit {finished.returncode}):\n{finished.log_tail}"
            progress.update(text, len(results), len(failed), time.monotonic() - submitted)
    finally:
        progress.close()
        client.cancel(list(names))  # an external cluster's workers would go on with the stages not yet started
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
    """One line per finished stage, with the stages done, failed and left and an ETA from the pace so far;
    on a terminal the counts also stay on a status line of their own."""

    def __init__(self, total: int, interactive: bool):
        self.total, self.interactive = total, interactive

    def update(self, text: str, finished: int, failed: int, elapsed: float) -> None:
        left = self.total - finished
        counts = (f"[{finished}/{self.total}: {finished - failed} done, {failed} failed, {left} left, "
                  f"ETA {elapsed / finished * left / 60:.1f} min]")
        if self.interactive:
            sys.stdout.write(f"\r\033[K{text}\n{counts}")
            sys.stdout.flush()
        else:
            typer.echo(f"{text}  {counts}")

    def close(self) -> None:
        if self.interactive:
            sys.stdout.write("\n")


if __name__ == "__main__":
    typer.run(main)
