"""The stage scripts as a user runs them: resume after SIGKILL, identical reruns, clean errors."""

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
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


def kill_after_rounds(work, out, rounds):
    """Start a learn stage and SIGKILL it once its checkpoint holds ``rounds`` rounds; return the checkpoint."""
    proc = subprocess.Popen(command("learn", *learn_args(out)), cwd=work, stdout=subprocess.DEVNULL)
    checkpoint = work / f"{out}.ckpt.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if checkpoint.exists() and len(json.loads(checkpoint.read_text())["rounds"]) >= rounds:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / out / "curve.csv").exists()
    return checkpoint


def test_killed_run_resumes_to_the_same_result(work):
    if not (work / "a").exists():
        stage("learn", *learn_args("a"), cwd=work)
    kill_after_rounds(work, "killed", 3)
    resumed = stage("learn", *learn_args("killed"), cwd=work)
    assert "resuming after round" in resumed.stdout
    (curve_a, acquired_a), (curve_k, acquired_k) = results(work, "a"), results(work, "killed")
    pd.testing.assert_frame_equal(curve_a, curve_k)
    assert acquired_a == acquired_k


def test_run_killed_after_its_final_round_is_not_trained_again(work):
    """Killed between the final round's checkpoint and the CSVs: the rerun writes the checkpoint's rounds,
    each labelled-set size once, and trains nothing."""
    if not (work / "a").exists():
        stage("learn", *learn_args("a"), cwd=work)
    checkpoint = kill_after_rounds(work, "final", 1)
    curve, acquired = pd.read_csv(work / "a" / "curve.csv"), pd.read_csv(work / "a" / "acquired.csv")
    fields = curve.rename(columns=lambda c: {"round": "index"}.get(c, c.removeprefix("test_")))  # Round's fields
    rounds = [{**row, "acquired": acquired.pool_index[acquired["round"] == row["index"]].tolist(),
               "scores": acquired.score[acquired["round"] == row["index"]].tolist()}
              for row in fields.to_dict("records")]
    rounds[-1]["accuracy"] = 0.123  # not what training would give: shows the round was not trained again
    saved = json.loads(checkpoint.read_text())
    checkpoint.write_text(json.dumps({"fingerprint": saved["fingerprint"], "rounds": rounds}))
    result = stage("learn", *learn_args("final"), cwd=work)
    assert f"resuming after round {len(rounds)}" in result.stdout
    final = pd.read_csv(work / "final" / "curve.csv")
    assert final.n_labelled.is_unique and final.n_labelled.tolist() == curve.n_labelled.tolist()
    assert final.test_accuracy.iloc[-1] == 0.123
    pd.testing.assert_frame_equal(final.iloc[:-1], curve.iloc[:-1])
    assert (work / "final" / "acquired.csv").read_bytes() == (work / "a" / "acquired.csv").read_bytes()
    assert not checkpoint.exists()


def test_run_records_its_environment_and_a_checkpoint_from_another_is_ignored(work):
    if not (work / "a").exists():
        stage("learn", *learn_args("a"), cwd=work)
    env = json.loads((work / "a" / "environment.json").read_text())
    assert env["device"] == "cpu" and env["threads"] == 1 and env["torch"] == torch.__version__
    assert env["cpu"] and env["device_name"] == env["cpu"] and env["python"]
    checkpoint = kill_after_rounds(work, "threads", 2)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["compute"]["threads"] = 2
    (work / "two.yaml").write_text(yaml.safe_dump(params))
    result = stage("learn", *learn_args("threads", params="two.yaml"), cwd=work)
    assert "resuming" not in result.stdout and "1 thread" not in result.stdout and "2 thread(s)" in result.stdout
    assert json.loads((work / "threads" / "environment.json").read_text())["threads"] == 2
    assert not checkpoint.exists()


def test_acquired_points_say_whether_the_batch_was_past_its_ceiling(work):
    if not (work / "a").exists():
        stage("learn", *learn_args("a"), cwd=work)
    acquired = pd.read_csv(work / "a" / "acquired.csv")
    assert list(acquired.columns) == ["round", "pool_index", "label", "score", "past_ceiling"]
    assert not acquired.past_ceiling.any()  # BALD's per-point scores have no joint ceiling


def test_batchbald_warns_and_flags_each_pick_past_its_log_k_ceiling(work):
    """K = 2 and batches of 20 on TwoMoons: BatchBALD's batches reach 0.9 log 2 nats. Each acquired point's
    flag is its score (the batch's running joint mutual information) against 0.9 log K, and the log warns
    once for each round with a flagged pick, naming the first."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["learn"]["twomoons"].update(mc_samples=2, acquisition_size=20, budget=84, p_in=0.5, p_hidden=0.5)
    (work / "ceiling.yaml").write_text(yaml.safe_dump(params))
    log = stage("learn", *learn_args("ceiling", strategy="batchbald", params="ceiling.yaml"), cwd=work).stdout
    acquired = pd.read_csv(work / "ceiling" / "acquired.csv")
    assert acquired.past_ceiling.tolist() == (acquired.score > 0.9 * math.log(2)).tolist()
    acquired["pick"] = acquired.groupby("round").cumcount() + 1
    first_flagged = acquired[acquired.past_ceiling].groupby("round").pick.min()
    assert len(first_flagged) >= 1
    warnings = [line for line in log.splitlines() if "warning" in line]
    assert warnings == [f"[twomoons-batchbald-0] warning: round {r + 1}: from pick {pick} of 20 the batch's joint mutual "
                        "information exceeds 0.9 log K (K = 2); later picks are Monte-Carlo noise, and only more samples "
                        "(mc_samples) lift the ceiling" for r, pick in first_flagged.items()]


def test_checkpoint_from_other_params_is_ignored(work):
    checkpoint = work / "other.ckpt.json"
    checkpoint.write_text(json.dumps({"fingerprint": "made-with-other-params", "rounds": []}))
    result = stage("learn", *learn_args("other"), cwd=work)
    assert "resuming" not in result.stdout


def test_checkpoint_covers_the_code_a_run_executes_and_no_other():
    """The checkpoint's fingerprint hashes the modules the run imported: its own strategy's, not another's."""
    probe = ("import sys; sys.argv = ['learn.py']; sys.path.insert(0, {stages!r}); import learn; "
             "from bal import strategies; strategies.get('bald'); "
             "print('\\n'.join(str(p) for p in learn.code_files()))").format(stages=str(ROOT / "stages"))
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = {str(Path(f).resolve().relative_to(ROOT)) for f in out.split()}
    assert {"stages/learn.py", "stages/common.py", "src/bal/loop.py", "src/bal/strategies/bald.py",
            "src/bal/information.py", "src/bal/prepared.py"} <= files
    assert not {"src/bal/strategies/epig.py", "src/bal/plotting.py", "src/bal/results.py", "src/bal/splits.py"} & files
    assert not any(f.startswith("src/bal/sources/") for f in files)


@pytest.mark.parametrize("name", ["study", "single"])
def test_study_stages_depend_on_every_learn_key_they_read(name):
    """dvc.yaml's params of each study grid's stages against the Learn dataclass's fields (all but the two
    the grid sets), and its own budget."""
    from bal.config import STUDIES, STUDY_SETS, Learn

    assert name in STUDIES
    params = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]["params"]
    learn_keys = {p.rsplit(".", 1)[-1] for p in params if p.startswith("learn.")}
    assert learn_keys == {f.name for f in dataclasses.fields(Learn)} - set(STUDY_SETS)
    assert {"hidden", "p_in", "p_hidden"} <= learn_keys
    assert {"compute", "options.${item.strategy}", f"{name}.budget"} <= set(params)


def test_only_user_errors_lose_their_traceback(capsys):
    sys.path.insert(0, str(ROOT / "stages"))
    from bal.config import ConfigError
    from common import fails_cleanly

    @fails_cleanly
    def bad_param():
        raise ConfigError("learn.mnist.budget = -1: must be positive.")

    with pytest.raises(SystemExit) as exit_:
        bad_param()
    assert exit_.value.code == 2 and capsys.readouterr().err == "error: learn.mnist.budget = -1: must be positive.\n"

    @fails_cleanly
    def bug():
        raise ValueError("a programming error inside pandas or torch")

    with pytest.raises(ValueError, match="a programming error"):
        bug()


@pytest.mark.parametrize(
    "option, message",
    [
        ({"strategy": "balde"}, "--strategy 'balde': unknown strategy; known strategies: badge, bald, batchbald"),
        ({"dataset": "cifar"}, "--dataset 'cifar' has no learn.cifar entry"),
        ({"prepared": "nowhere"}, "nowhere/manifest.json is missing; run the prepare stage"),
        ({"params": "missing.yaml"}, "missing.yaml does not exist"),
    ],
)
def test_bad_input_one_sentence_exit_2(work, option, message):
    result = stage("learn", *learn_args("bad", **option), cwd=work, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (work / "bad").exists()


def test_aggregate_reports_the_split_a_dataset_evaluates_on(tmp_path):
    """learn.<dataset>.evaluate_on: dev writes dev_* columns; aggregate summarises those (it asked for test_*)."""
    params = {**PARAMS, "run": {"datasets": ["twomoons"], "strategies": ["random", "bald"], "seeds": [0]},
              "survey": {**PARAMS["survey"], "datasets": []}}
    params["learn"] = {**PARAMS["learn"], "twomoons": {**PARAMS["learn"]["twomoons"], "evaluate_on": "dev"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for strategy, final in (("random", 0.8), ("bald", 0.9)):
        run = tmp_path / "runs" / "twomoons" / strategy / "0"
        run.mkdir(parents=True)
        pd.DataFrame({"round": [0, 1], "n_labelled": [4, 6], "dev_accuracy": [0.5, final - 0.1],
                      "dev_accuracy_dropout_off": [0.6, final], "dev_nll": [0.7, 0.6]}).to_csv(run / "curve.csv", index=False)
        pd.DataFrame({"round": [0, 0], "pool_index": [1, 2], "label": [0, 1], "score": [0.1, 0.2],
                      "past_ceiling": [False, False]}).to_csv(run / "acquired.csv", index=False)
    stage("aggregate", "--runs", "runs", "--metrics", "summary.json", "--plots", "plots", cwd=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())["twomoons"]
    assert (summary["random"]["final_accuracy"], summary["bald"]["final_accuracy"]) == (0.8, 0.9)
