"""The suggest loop through a real Label Studio server on 127.0.0.1: suggest, push the tasks, annotate
them through its API as a person would in its UI, pull the export and apply it, prepare and suggest again.

Label Studio runs from its own virtualenv (``make label-studio``, which .ci/run runs), as teams run it:
its dependencies must not bend ours.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_pipeline import fresh_copy, prepare_only, sh

from bal.label_studio import Server

ROOT = Path(__file__).resolve().parents[1]
EXECUTABLE = Path(os.environ.get("BAL_LABEL_STUDIO", ROOT / ".venv-label-studio" / "bin" / "label-studio"))
TOKEN = "bal0tests0token0000000000000000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the project with an image folder of two classes (the file names say the true class) and
    12 unlabelled images, committed, with bal's own files as they are."""
    repo = fresh_copy(tmp_path_factory)
    prepare_only(repo, ["twomoons"])
    rng = np.random.default_rng(0)
    root = repo / "data" / "sources" / "mine"
    for name, brightness in (("dark", 50), ("light", 200)):
        for folder, n in ((root / name, 14), (root / "unlabelled", 6)):
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shift = 10 * i if folder.name == "unlabelled" else 0
                pixels = np.clip(rng.normal(brightness + shift * (1 if name == "dark" else -1), 20, (20, 20)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8), "L").save(folder / f"{name}_{'u' if folder.name == 'unlabelled' else ''}{i}.png")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["own"] = {"mine": {"source": "image_folder", "path": "data/sources/mine", "n_validation": 4, "n_test": 4}}
    params["learn"]["mine"] = {"budget": 20, "acquisition_size": 3, "mc_samples": 4, "train": {"steps": 20}}
    params["suggest"] = {"mine": {"strategy": "bald"}}
    params["run"]["datasets"], params["survey"]["datasets"], params["study"]["datasets"] = ["twomoons"], [], []
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


@pytest.fixture(scope="module")
def server(repo, tmp_path_factory):
    """Label Studio on a free loopback port, serving the copy's files, with a known user token; stopped by PID."""
    if not EXECUTABLE.is_file():
        pytest.skip(f"no Label Studio at {EXECUTABLE}: `make label-studio` installs it in its own virtualenv "
                    "(or set BAL_LABEL_STUDIO to a label-studio executable)")
    port, data = free_port(), tmp_path_factory.mktemp("label-studio")
    env = {**os.environ, "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
           "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(repo)}
    log = open(data / "server.log", "w")
    process = subprocess.Popen([str(EXECUTABLE), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(data / "data"), "--username", "ci@example.com", "--password", "bal-tests-1",
                                "--user-token", TOKEN, "--enable-legacy-api-token"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Label Studio did not start: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def labels(*args, cwd):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "labels.py"), *args], cwd=cwd, capture_output=True,
                            text=True, env={**os.environ, "LABEL_STUDIO_API_KEY": TOKEN})
    assert result.returncode == 0, result.stderr
    return result.stdout


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_suggest_label_in_label_studio_pull_and_suggest_again(repo, server):
    sh("dvc", "repro", "suggest@mine", cwd=repo)
    first = pd.read_csv(repo / "suggestions" / "mine.csv")
    record = pd.read_csv(repo / "data" / "splits" / "mine.csv")
    held = {name: np.load(repo / "data" / "prepared" / "mine" / f"{name}_x.npy") for name in ("val", "test")}

    project = int(labels("push", "mine", "--url", server, cwd=repo).split()[-1])
    ls = Server(server, TOKEN)
    pushed = ls.call("GET", f"/api/tasks?project={project}")["tasks"]
    assert sorted(t["data"]["item"] for t in pushed) == sorted(first.item)
    for task in pushed:  # the image is served, and a person picks the class the file name says
        with urllib.request.urlopen(urllib.request.Request(server + task["data"]["image"],
                                                           headers={"Authorization": f"Token {TOKEN}"})) as response:
            assert response.read() == (repo / "data" / "sources" / "mine" / task["data"]["item"]).read_bytes()
        truth = Path(task["data"]["item"]).name.split("_")[0]
        ls.call("POST", f"/api/tasks/{task['id']}/annotations",
                {"result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [truth]}}]})

    assert "3 labels applied" in labels("pull", "mine", "--project", str(project), "--url", server, cwd=repo)
    source = repo / "data" / "sources" / "mine"
    after = files(source)
    for item in first.item:
        assert not (source / item).exists() and (source / Path(item).name.split("_")[0] / Path(item).name).is_file()
    assert "0 labels applied, 3 applied before" in labels("pull", "mine", "--project", str(project), "--url", server, cwd=repo)
    assert files(source) == after  # twice: nothing changed

    out = sh("dvc", "repro", "suggest@mine", cwd=repo).stdout
    assert "Running stage 'prepare_own@mine'" in out and "Running stage 'suggest@mine'" in out
    second = pd.read_csv(repo / "suggestions" / "mine.csv")
    assert not set(second.item) & set(first.item)
    now = pd.read_csv(repo / "data" / "splits" / "mine.csv")
    assert len(now) == len(record) + 3 and (now.split == "pool").sum() == (record.split == "pool").sum() + 3
    assert now.merge(record, on="item").pipe(lambda m: (m.split_x == m.split_y).all())  # no item changed split
    for name, x in held.items():
        assert np.array_equal(np.load(repo / "data" / "prepared" / "mine" / f"{name}_x.npy"), x)
    unlabelled = json.loads((repo / "data" / "prepared" / "mine" / "manifest.json").read_text())["unlabelled_items"]
    assert len(unlabelled) == 9 and not set(unlabelled) & set(first.item)
