"""The stage scripts as a user runs them: resume after SIGKILL, identical reruns, clean errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("stages")
    params = {**PARAMS, "run": {"datasets": ["twomoons"], "strategies": ["bald"], "seeds": [0]}}
    params["learn"]["twomoons"] = {**params["learn"]["twomoons"], "budget": 24, "mc_samples": 8}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    stage("prepare", "--dataset", "twomoons", "--out", "prepared", cwd=work)
    return work


def command(name, *args):
    return [sys.executable, str(ROOT / "stages" / f"{name}.py"), *args]


def stage(name, *args, cwd, check=True):
    result = subprocess.run(command(name, *args), cwd=cwd, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def learn_args(out, **options):
    options = {"dataset": "twomoons", "strategy": "bald", "seed": "0", "prepared": "prepared",
               "out": out, "checkpoint": f"{out}.ckpt.json", **options}
    return [arg for key, value in options.items() for arg in (f"--{key}", value)]


def results(work, out):
    curve = pd.read_csv(work / out / "curve.csv")
    return curve.drop(columns=[c for c in curve if c.endswith("_seconds")]), (work / out / "acquired.csv").read_bytes()


def test_rerun_is_identical(work):
    stage("learn", *learn_args("a"), cwd=work)
    stage("learn", *learn_args("b"), cwd=work)
    (curve_a, acquired_a), (curve_b, acquired_b) = results(work, "a"), results(work, "b")
    pd.testing.assert_frame_equal(curve_a, curve_b)
    assert acquired_a == acquired_b
    assert not (work / "a.ckpt.json").exists()


def test_killed_run_resumes_to_the_same_result(work):
    if not (work / "a").exists():
        stage("learn", *learn_args("a"), cwd=work)
    proc = subprocess.Popen(command("learn", *learn_args("killed")), cwd=work, stdout=subprocess.DEVNULL)
    checkpoint = work / "killed.ckpt.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if checkpoint.exists() and len(json.loads(checkpoint.read_text())["rounds"]) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / "killed" / "curve.csv").exists()
    resumed = stage("learn", *learn_args("killed"), cwd=work)
    assert "resuming after round" in resumed.stdout
    (curve_a, acquired_a), (curve_k, acquired_k) = results(work, "a"), results(work, "killed")
    pd.testing.assert_frame_equal(curve_a, curve_k)
    assert acquired_a == acquired_k


def test_checkpoint_from_other_params_is_ignored(work):
    checkpoint = work / "other.ckpt.json"
    checkpoint.write_text(json.dumps({"fingerprint": "made-with-other-params", "rounds": []}))
    result = stage("learn", *learn_args("other"), cwd=work)
    assert "resuming" not in result.stdout


def test_checkpoint_covers_the_code_a_run_executes_and_no_other():
    probe = ("import sys; sys.argv = ['learn.py']; sys.path.insert(0, 'stages'); import learn; "
             "print('\\n'.join(p.name for p in learn.code_files()))")
    names = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert {"learn.py", "common.py", "loop.py", "acquisition.py", "joint_entropy.py", "models.py", "data.py"} <= set(names)
    assert "plotting.py" not in names and "results.py" not in names


@pytest.mark.parametrize(
    "option, message",
    [
        ({"strategy": "balde"}, "unknown strategy 'balde'; known strategies: random"),
        ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
        ({"prepared": "nowhere"}, "nowhere/manifest.json is missing; run the prepare stage"),
        ({"params": "missing.yaml"}, "missing.yaml does not exist"),
    ],
)
def test_bad_input_one_sentence_exit_2(work, option, message):
    result = stage("learn", *learn_args("bad", **option), cwd=work, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (work / "bad").exists()
