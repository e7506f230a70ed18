"""Labels back from Label Studio: its export read, and applied to an image folder or a CSV all or
nothing, idempotently, refusing what bal never suggested or a label that is not a class."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bal.errors import DataError
from bal.identity import digest
from bal.label_studio import label_config, labels_of, tasks
from bal.sources.csv import Options as CsvOptions
from bal.sources.csv import read_table
from bal.sources.csv import apply_labels as label_rows
from bal.sources.image_folder import Options as ImageFolderOptions
from bal.sources.image_folder import apply_labels as move_images

ROOT = Path(__file__).resolve().parents[1]


def annotated(item, *choices, cancelled=()):
    """A task as Label Studio's JSON export holds it: bal's data back unchanged, one annotation per choice."""
    return {"id": hash(item) % 1000, "data": {"item": item, "rank": 1},
            "annotations": [{"id": i, "was_cancelled": i in cancelled,
                             "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                         "value": {"choices": [choice]}}]} for i, choice in enumerate(choices)],
            "predictions": []}


def test_an_export_gives_each_annotated_item_its_label():
    export = [annotated("unlabelled/1.png", "cat"), annotated("unlabelled/2.png", "dog", "cat", cancelled={1}),
              annotated("unlabelled/3.png"), annotated("unlabelled/4.png", "dog", "dog")]
    assert labels_of(export, "e.json") == {"unlabelled/1.png": "cat", "unlabelled/2.png": "dog", "unlabelled/4.png": "dog"}


@pytest.mark.parametrize("export, message", [
    ([annotated("unlabelled/1.png", "cat", "dog")], "e.json: the annotators of unlabelled/1.png disagree (cat, dog)"),
    ([annotated("unlabelled/1.png", "cat"), annotated("unlabelled/1.png", "dog")],  # the tasks imported twice
     "e.json: the annotators of unlabelled/1.png disagree (cat, dog)"),
    ([{"id": 3, "data": {"item": "line 2"}, "annotations": [{"result": [{"type": "choices", "value": {"choices": 5}}]}]}],
     "e.json: an annotation of line 2 is not a Label Studio choice"),
    ([{"id": 7, "data": {"image": "x.png"}, "annotations": []}], "e.json: task 7 has no data.item, so bal never suggested it"),
    ({"tasks": []}, "e.json is not a Label Studio JSON export"),
])
def test_an_export_bal_cannot_read_is_named(export, message):
    with pytest.raises(DataError, match=re.escape(message)):
        labels_of(export, "e.json")


def test_tasks_carry_the_item_the_prediction_and_the_score():
    row = {"item": "unlabelled/1.png", "rank": 1, "score": 0.5, "predicted_class": "cat", "probability": 0.75,
           "image": "/data/local-files/?d=x/unlabelled/1.png"}
    (task,) = tasks([row], "image", "bald")
    assert task["data"] == {"item": "unlabelled/1.png", "image": row["image"], "rank": 1, "score": 0.5, "strategy": "bald"}
    (prediction,) = task["predictions"]
    assert prediction["score"] == 0.75 and prediction["result"][0]["value"] == {"choices": ["cat"]}
    assert prediction["result"][0]["to_name"] == "image" and 'toName="image"' in label_config(["cat", "dog"], "image")
    assert '<Choice value="cat"/>' in label_config(["cat", "dog"], "image") and "$features" in label_config(["a"], "table")


def tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("cat", 3), ("dog", 3), ("unlabelled", 4)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), "L").save(tmp_path / "imgs" / name / f"{name}{i}.png")
    return tmp_path / "imgs"


def suggested(folder, *names):
    """What suggest's history holds of these unlabelled images: each with its file's digest."""
    return {f"unlabelled/{name}": {digest((folder / "unlabelled" / name).read_bytes())} for name in names}


@pytest.fixture
def history(folder):
    return suggested(folder, "unlabelled0.png", "unlabelled1.png", "unlabelled2.png")


def test_image_labels_move_the_files_once(folder, history):
    options, before = ImageFolderOptions(str(folder)), tree(folder)
    labels = {"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled1.png": "dog"}
    assert move_images(options, "own.mine", labels, history) == sorted(labels)
    after = tree(folder)
    assert after["cat/unlabelled0.png"] == before["unlabelled/unlabelled0.png"]
    assert after["dog/unlabelled1.png"] == before["unlabelled/unlabelled1.png"]
    assert set(after) == set(before) - set(labels) | {"cat/unlabelled0.png", "dog/unlabelled1.png"}
    assert move_images(options, "own.mine", labels, history) == [] and tree(folder) == after  # twice: nothing changes


@pytest.mark.parametrize("labels, message", [  # the good label sorts first: a label-by-label apply would move it
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled1.png": "cow"},
     r"own.mine: unlabelled/unlabelled1.png is labelled 'cow', which is not a class folder of .* \(cat, dog\); nothing was applied"),
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled3.png": "dog"},
     r"own.mine: bal never suggested unlabelled/unlabelled3.png \(it is in no round of the suggestions' history\)"),
    ({"cat/cat0.png": "dog", "unlabelled/unlabelled0.png": "cat"}, "own.mine: bal never suggested cat/cat0.png"),
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled2.png": "dog"},
     "own.mine: .*unlabelled2.png is another image than bal suggested"),
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled1.png": "dog"}, "own.mine: unlabelled/unlabelled1.png is not there"),
])
def test_a_bad_image_label_is_refused_and_nothing_moves(folder, history, labels, message):
    (folder / "unlabelled" / "unlabelled2.png").write_bytes((folder / "cat" / "cat0.png").read_bytes())  # replaced since
    if "not there" in message:
        (folder / "unlabelled" / "unlabelled1.png").unlink()
    before = tree(folder)
    with pytest.raises(DataError, match=message):
        move_images(ImageFolderOptions(str(folder)), "own.mine", labels, history)
    assert tree(folder) == before


def test_a_move_that_fails_undoes_the_others_and_the_folders_it_made(folder, history):
    """The second move fails (a file stands where its folder must go): the first is undone, its new folder removed."""
    for name in ("a", "b"):
        (folder / "unlabelled" / name).mkdir()
        (folder / "unlabelled" / "unlabelled0.png").rename(folder / "unlabelled" / name / "x.png") if name == "a" else \
            (folder / "unlabelled" / "unlabelled1.png").rename(folder / "unlabelled" / name / "x.png")
    (folder / "dog" / "b").write_bytes(b"a file, not a folder")
    labels = {"unlabelled/a/x.png": "cat", "unlabelled/b/x.png": "dog"}
    seen = {item: {digest((folder / item).read_bytes())} for item in labels}
    before, folders = tree(folder), sorted(p for p in folder.rglob("*") if p.is_dir())
    with pytest.raises(DataError, match=r"own.mine: moving .*unlabelled/b/x.png to .*dog/b/x.png failed .*; every move was undone"):
        move_images(ImageFolderOptions(str(folder)), "own.mine", labels, seen)
    assert tree(folder) == before and sorted(p for p in folder.rglob("*") if p.is_dir()) == folders


def test_an_image_labelled_otherwise_keeps_its_label(folder, history):
    options = ImageFolderOptions(str(folder))
    move_images(options, "own.mine", {"unlabelled/unlabelled0.png": "cat"}, history)
    before = tree(folder)
    with pytest.raises(DataError, match=r"unlabelled/unlabelled0.png is labelled 'cat' already .*bal never moves a label"):
        move_images(options, "own.mine", {"unlabelled/unlabelled0.png": "dog"}, history)
    assert tree(folder) == before


TABLE = '\ufeffid,f,g,label\r\nr1,1.5,2,a\r\n\r\n"r 2","0.250",1,\r\nr3,3,4,b\r\nr4,7,8,\r\nr5,9,9\r\n'


def seen_rows(path, options, *items):
    """What suggest's history holds of these rows: each with its features' digest, as prepare reads them."""
    table = read_table(options, "own.t")
    return {item: {digest(table.x_N_D[table.ids.index(item)].tobytes())} for item in items}


def test_csv_labels_fill_only_the_label_cells(tmp_path):
    """Excel's byte-order mark, quoted cells, a blank line, CRLF and a short row: only the label cells change."""
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode())
    path.chmod(0o600)
    options = CsvOptions(str(path), id_column="id")
    history = seen_rows(path, options, "r 2", "r4", "r5")
    assert label_rows(options, "own.t", {"r 2": "b", "r5": "a"}, history) == ["r 2", "r5"]
    assert path.read_bytes() == TABLE.replace('"0.250",1,\r\n', '"0.250",1,b\r\n').replace("r5,9,9\r\n", "r5,9,9,a\r\n").encode()
    assert path.stat().st_mode & 0o777 == 0o600
    assert label_rows(options, "own.t", {"r 2": "b"}, history) == []  # twice: nothing changes


@pytest.mark.parametrize("labels, message", [  # the good label sorts first: a label-by-label apply would write it
    ({"r 2": "a", "r4": "c"}, r"own.t: r4 is labelled 'c', which no row of .* holds \(a, b\); nothing was applied"),
    ({"r 2": "a", "r6": "a"}, "own.t: bal never suggested r6"),
    ({"r 2": "a", "r3": "a"}, "own.t: r3 is labelled 'b' already, and bal never changes a label"),
    ({"r 2": "a", "r4": "a"}, r"own.t: r4 of .* is another row than bal suggested \(its features differ\)"),
    ({"r 2": "a", "r5": "a"}, r"own.t: r5 of .* is not there any more"),
])
def test_a_bad_csv_label_is_refused_and_the_file_is_unchanged(tmp_path, labels, message):
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode())
    options = CsvOptions(str(path), id_column="id")
    history = {**seen_rows(path, options, "r 2", "r3", "r5"), "r4": {"0123456789abcdef"}}
    text = TABLE.replace("r5,9,9\r\n", "") if "r5" in labels else TABLE
    path.write_bytes(text.encode())
    with pytest.raises(DataError, match=message):
        label_rows(options, "own.t", labels, history)
    assert path.read_bytes() == text.encode()


def test_csv_rows_without_ids_are_their_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("f,label\n1,a\n\n2,\n3,b\n")
    options = CsvOptions(str(path))
    assert label_rows(options, "own.t", {"line 4": "b"}, seen_rows(path, options, "line 4")) == ["line 4"]
    assert path.read_text() == "f,label\n1,a\n\n2,b\n3,b\n"


def test_the_labels_command_applies_an_export_or_says_why_not(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("f,label\n1,a\n2,b\n3,\n4,\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["own"] = {"t": {"source": "csv", "path": "data/t.csv"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "suggestions").mkdir()
    row = np.array([3], dtype=np.float32).tobytes()  # line 4's features, as prepare reads them
    (tmp_path / "suggestions" / "t.history.csv").write_text(f"item,content\nline 4,{digest(row)}\n")
    run = lambda *args: subprocess.run([sys.executable, str(ROOT / "tools" / "labels.py"), *args], cwd=tmp_path,  # noqa: E731
                                       capture_output=True, text=True)
    (tmp_path / "e.json").write_text(json.dumps([annotated("line 4", "b"), annotated("line 5", "a")]))
    refused = run("apply", "t", "e.json")
    assert refused.returncode == 2 and refused.stderr == ("error: own.t: bal never suggested line 5 (it is in no round of "
                                                          "the suggestions' history); nothing was applied.\n")
    assert (tmp_path / "data" / "t.csv").read_text() == "f,label\n1,a\n2,b\n3,\n4,\n"
    (tmp_path / "e.json").write_text(json.dumps([annotated("line 4", "b")]))
    applied = run("apply", "t", "e.json")
    assert applied.returncode == 0 and "t: 1 labels applied" in applied.stdout
    assert (tmp_path / "data" / "t.csv").read_text() == "f,label\n1,a\n2,b\n3,b\n4,\n"  # line 4 of the file
    assert run("apply", "nope", "e.json").stderr.startswith("error: 'nope' is not one of your own datasets")
