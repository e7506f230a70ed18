"""The grid on real Dask engines (tools/grid.py): a LocalCluster, an external scheduler with two workers
started here, and Slurm where this machine runs one; a failing stage, a resumed grid, and a dep edited
while its stage runs."""

import importlib.util
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline import fresh_copy, prepare_only, sh
from test_tools import tool

ROOT = Path(__file__).resolve().parents[1]
GRID = [f"learn@twomoons-{s}-{seed}" for s in ("random", "bald") for seed in (0, 1)]


def tiny_grid(tmp_path_factory, budget=14, steps=50, **options):
    """A copy of the project whose grid is TwoMoons x {random, bald} x seeds {0, 1}, 5 rounds each, prepared."""
    repo = fresh_copy(tmp_path_factory)
    prepare_only(repo, ["twomoons"])
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["run"] = {"datasets": ["twomoons"], "strategies": ["random", "bald"], "seeds": [0, 1]}
    params["survey"]["datasets"], params["study"]["datasets"] = [], []
    params["learn"]["twomoons"].update(budget=budget, train={**params["learn"]["twomoons"]["train"], "steps": steps})
    params["options"].update(options)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "tiny grid", cwd=repo)
    sh("dvc", "repro", "prepare@twomoons", cwd=repo)
    return repo


def grid(repo, *args, check=True):
    result = subprocess.run([sys.executable, str(repo / "tools" / "grid.py"), *args], cwd=repo, capture_output=True,
                            text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1", "JOBS": "2",
                                            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert (result.returncode == 0) == check, result.stdout + result.stderr
    return result


def curves(repo):
    return {stage: (repo / "data" / "runs" / "twomoons" / stage.split("-")[1] / stage.split("-")[2] / "curve.csv").read_bytes()
            for stage in GRID}


def without_timing(data: bytes) -> pd.DataFrame:
    frame = pd.read_csv(pd.io.common.BytesIO(data))
    return frame.drop(columns=[c for c in frame.columns if c.endswith("_seconds")])  # timing aside


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The same four stages by plain `dvc repro`, one after another: what every engine must reproduce."""
    repo = tiny_grid(tmp_path_factory)
    sh("dvc", "repro", *GRID, cwd=repo)
    return curves(repo)


def check_recorded_like_dvc_repro(repo, sequential):
    assert not set(json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)) & set(GRID)  # recorded, up to date
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(GRID) <= set(lock)
    for stage, data in curves(repo).items():
        pd.testing.assert_frame_equal(without_timing(data), without_timing(sequential[stage]))


def test_a_local_cluster_runs_the_grid_as_dvc_repro_would(tmp_path_factory, sequential):
    repo = tiny_grid(tmp_path_factory)
    out = grid(repo, "learn@twomoons-*", "--commit").stdout
    assert "4 stages on tcp://127.0.0.1:" in out
    assert ("dashboard http://127.0.0.1:" in out) == bool(importlib.util.find_spec("bokeh"))  # the dashboard needs bokeh
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("done ")) == sorted(GRID)
    check_recorded_like_dvc_repro(repo, sequential)
    log = sh("git", "log", "--format=%s", cwd=repo).stdout.splitlines()
    finished = [line for line in log if " finished: " in line]
    assert sorted(line.split()[0] for line in finished) == sorted(GRID)
    model = tool("grid").stage_common(str(ROOT)).cpu_model()
    assert all(f", {model}, " in line for line in finished), finished  # the CPU it ran on, by name
    assert sh("git", "status", "--porcelain", "dvc.lock", "data/runs", cwd=repo).stdout == ""  # each committed
    assert grid(repo).stdout == "no stage out of date\n"  # and a rerun skips them all


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_external_scheduler_with_two_workers(tmp_path_factory, sequential):
    repo = tiny_grid(tmp_path_factory)
    port, bin_dir = free_port(), Path(sys.executable).parent
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    processes = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], cwd=tmp_path_factory.getbasetemp(), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        processes += [subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                        "--no-dashboard"], cwd=tmp_path_factory.getbasetemp(), env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(2)]
        out = grid(repo, "--scheduler", address).stdout
        assert f"4 stages on {address}" in out
        check_recorded_like_dvc_repro(repo, sequential)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def test_a_failing_stage_is_named_and_the_others_finish(tmp_path_factory):
    """options.bald.nope is no option of BALD: the bald stages fail, each named with its exit status and
    its log's last lines, the random ones finish and are recorded; the command exits 1, listing the failures."""
    repo = tiny_grid(tmp_path_factory, bald={"nope": 1})
    result = grid(repo, "learn@twomoons-bald-*", "learn@twomoons-*", check=False)  # the failures first
    assert result.returncode == 1
    assert "2 of 4 stages failed: learn@twomoons-bald-0, learn@twomoons-bald-1" in result.stderr or \
        "2 of 4 stages failed: learn@twomoons-bald-1, learn@twomoons-bald-0" in result.stderr
    assert "FAILED learn@twomoons-bald-0 (exit 2):" in result.stdout and "options.bald.nope" in result.stdout
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {"learn@twomoons-random-0", "learn@twomoons-random-1"} <= set(lock) and not {s for s in lock if "bald" in s}


def test_an_interrupted_grid_resumes_without_rerunning_finished_stages(tmp_path_factory):
    repo = tiny_grid(tmp_path_factory)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "JOBS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # SIGINT as at a terminal: a shell without job control (a CI's `cmd &`) starts its children with it ignored,
    # and a child keeps an ignored signal ignored, where a handler of ours becomes the default
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen([sys.executable, "tools/grid.py"], cwd=repo, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    first = process.stdout.readline()  # "4 stages on ..."
    assert "4 stages" in first
    done = process.stdout.readline()
    assert done.startswith("done "), done
    deadline = time.monotonic() + 120
    while not list((repo / "data" / "checkpoints").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the second stage's first round is checkpointed: its command runs (the first's is gone)
    assert list((repo / "data" / "checkpoints").glob("*.json")), "the second stage never checkpointed a round"
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the grid, its workers and the stage's command
    assert process.wait(timeout=120) != 0, process.stdout.read()
    finished = done.split()[1]
    curve = repo / "data" / "runs" / "twomoons" / finished.split("-")[1] / finished.split("-")[2] / "curve.csv"
    stamp = curve.stat().st_mtime_ns
    out = grid(repo).stdout
    assert finished not in out and f"{out.split()[0]} stages on" in out and int(out.split()[0]) <= 3
    assert curve.stat().st_mtime_ns == stamp
    assert not set(json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)) & set(GRID)


def test_a_dep_edited_while_its_stage_runs_is_recorded_as_the_version_that_ran(tmp_path_factory):
    """(`dvc repro` would record the edited file: it hashes the deps after the command.)"""
    repo = tiny_grid(tmp_path_factory, budget=40, steps=300)  # 19 rounds: time to edit mid-run
    strategy = repo / "src" / "bal" / "strategies" / "bald.py"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "JOBS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([sys.executable, "tools/grid.py", "learn@twomoons-bald-0"], cwd=repo, env=env,
                               stdout=subprocess.PIPE, text=True)
    checkpoint = repo / "data" / "checkpoints" / "twomoons-bald-0.json"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the stage is running: its first round is checkpointed
    original = sh("md5sum", str(strategy), cwd=repo).stdout.split()[0]
    strategy.write_text(strategy.read_text() + "# edited while the stage ran\n")
    assert process.poll() is None and checkpoint.exists()  # edited mid-run, not after
    assert process.wait(timeout=300) == 0
    deps = {d["path"]: d["md5"] for d in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["learn@twomoons-bald-0"]["deps"]}
    assert deps["src/bal/strategies/bald.py"] == original
    assert "learn@twomoons-bald-0" in json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)  # so it runs again


def test_a_stage_waits_for_a_dvc_repro_reading_its_run_folder(tmp_path_factory):
    """A `dvc repro` of a summary stage beside the grid holds a read lock on the run folders while its
    command runs. The grid's stage waits for it, both before its command (removing its outputs) and after
    (recording them), says so, and is recorded."""
    repo = tiny_grid(tmp_path_factory)
    stage = "learn@twomoons-random-0"
    sh("dvc", "repro", "--single-item", stage, cwd=repo)  # so that the reader's dep, the runs folder, exists
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["stages"]["reader"] = {"cmd": "touch reading && while [ ! -e done ]; do sleep 0.1; done && rm reading done",
                                    "deps": ["data/runs/twomoons"]}
    learn = pipeline["stages"]["learn"]  # its command waits for the file go: a reader can start while it runs
    learn["cmd"] = f'bash -c "touch learning && while [ ! -e go ]; do sleep 0.1; done && {learn["cmd"]}"'
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def wait_until(done, what, timeout=120):
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert done(), what

    def reading():  # a reader in its command, holding its lock, as `dvc repro aggregate` would
        reader = subprocess.Popen(["dvc", "--wait-for-lock", "repro", "--force", "--single-item", "reader"], cwd=repo,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: (repo / "reading").exists() or reader.poll() is not None, "no reader")
        assert reader.poll() is None, "the reader's command never ran"
        return reader

    def release(reader):
        assert reader.poll() is None
        (repo / "done").touch()
        assert reader.wait(timeout=60) == 0

    lines, out, processes = queue.Queue(), [], []

    def wait_for(text):
        try:
            while text not in (line := lines.get(timeout=120)):
                out.append(line)
        except queue.Empty:
            pytest.fail(f"no {text!r} from the grid:\n{''.join(out)}")

    try:
        processes.append(reading())
        process = subprocess.Popen([sys.executable, "tools/grid.py", stage], cwd=repo, env={**env, "JOBS": "1"},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        output = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
        output.start()
        wait_for(f"{stage} (to start) waits for a lock on its paths")  # to remove its outputs
        assert not (repo / "learning").exists()
        release(processes[0])
        wait_until(lambda: (repo / "learning").exists(), "the stage's command never started")
        processes.append(reading())
        (repo / "go").touch()
        wait_for(f"{stage} (to record its run) waits for a lock on its paths")  # its command done
        release(processes[-1])
        assert process.wait(timeout=300) == 0
        output.join(timeout=60)
        out += [lines.get() for _ in range(lines.qsize())]
        assert any(line.startswith(f"done {stage}") for line in out), "".join(out)
        assert stage not in json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
    finally:  # nothing left waiting for a file that a failed test never wrote
        (repo / "go").touch()
        (repo / "done").touch()
        for p in processes:  # the grid closes its cluster on SIGTERM
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=60)


def slurm_available() -> str | None:
    """Why this machine cannot run the Slurm test, or None."""
    if not shutil.which("sbatch"):
        return "no Slurm here (no sbatch): .ci/slurm starts a single-node cluster, with SLURM_CONF=/tmp/bal-slurm/slurm.conf"
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.split()
    if not {"idle", "mix", "alloc"} & set(states):
        return f"no Slurm node is up (sinfo: {' '.join(states) or 'no answer'}; is SLURM_CONF set?)"
    return None


@pytest.mark.skipif(slurm_available() is not None, reason=str(slurm_available()))
def test_slurm_runs_the_grid_in_its_jobs(tmp_path_factory, sequential):
    repo = tiny_grid(tmp_path_factory)
    out = grid(repo, "--slurm", "--interface", "lo", "--memory", "1GB", "--walltime", "00:20:00", "--max-jobs", "2").stdout
    assert "4 stages on tcp://" in out
    check_recorded_like_dvc_repro(repo, sequential)
