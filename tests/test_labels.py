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
from bal.label_studio import label_config, labels_of, tasks
from bal.sources.csv import Options as CsvOptions
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


SUGGESTED = {"unlabelled/unlabelled0.png", "unlabelled/unlabelled1.png", "unlabelled/unlabelled2.png"}


def test_image_labels_move_the_files_once(folder):
    options, before = ImageFolderOptions(str(folder)), tree(folder)
    labels = {"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled1.png": "dog"}
    assert move_images(options, "own.mine", labels, SUGGESTED) == sorted(labels)
    after = tree(folder)
    assert after["cat/unlabelled0.png"] == before["unlabelled/unlabelled0.png"]
    assert after["dog/unlabelled1.png"] == before["unlabelled/unlabelled1.png"]
    assert set(after) == set(before) - set(labels) | {"cat/unlabelled0.png", "dog/unlabelled1.png"}
    assert move_images(options, "own.mine", labels, set()) == [] and tree(folder) == after  # twice: nothing changes


@pytest.mark.parametrize("labels, message", [
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled1.png": "cow"},
     r"own.mine: unlabelled/unlabelled1.png is labelled 'cow', which is not a class folder of .* \(cat, dog\); nothing was applied"),
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/unlabelled3.png": "dog"},
     "own.mine: bal never suggested unlabelled/unlabelled3.png .*; nothing was applied"),
    ({"unlabelled/unlabelled0.png": "cat", "cat/cat0.png": "dog"}, "own.mine: 'cat/cat0.png' is not an item of"),
    ({"unlabelled/unlabelled0.png": "cat", "unlabelled/gone.png": "dog"}, "own.mine: unlabelled/gone.png is not there any more"),
])
def test_a_bad_image_label_is_refused_and_nothing_moves(folder, labels, message):
    before = tree(folder)
    with pytest.raises(DataError, match=message):
        move_images(ImageFolderOptions(str(folder)), "own.mine", labels, SUGGESTED | {"unlabelled/gone.png"})
    assert tree(folder) == before


def test_an_image_labelled_otherwise_keeps_its_label(folder):
    options = ImageFolderOptions(str(folder))
    move_images(options, "own.mine", {"unlabelled/unlabelled0.png": "cat"}, SUGGESTED)
    before = tree(folder)
    with pytest.raises(DataError, match=r"unlabelled/unlabelled0.png is labelled 'cat' already .*bal never moves a label"):
        move_images(options, "own.mine", {"unlabelled/unlabelled0.png": "dog"}, SUGGESTED)
    assert tree(folder) == before


TABLE = "f,g,label\r\n1.5,2,a\r\n\r\n0.25,1,\r\n3,4,b\r\n7,8,\r\n"


def test_csv_labels_fill_the_cells_and_leave_every_other_byte(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode())
    options = CsvOptions(str(path))
    assert label_rows(options, "own.t", {"line 4": "b"}, {"line 4", "line 6"}) == ["line 4"]
    assert path.read_bytes() == TABLE.replace("0.25,1,\r\n", "0.25,1,b\r\n").encode()
    assert label_rows(options, "own.t", {"line 4": "b"}, set()) == [] and b"0.25,1,b\r\n" in path.read_bytes()


@pytest.mark.parametrize("labels, message", [
    ({"line 6": "a", "line 4": "c"}, r"own.t: line 4 is labelled 'c', which no row of .* holds \(a, b\); nothing was applied"),
    ({"line 6": "a", "line 3": "a"}, "own.t: 'line 3' is no row of"),
    ({"line 6": "a", "line 5": "a"}, "own.t: bal never suggested line 5"),
])
def test_a_bad_csv_label_is_refused_and_the_file_is_unchanged(tmp_path, labels, message):
    path = tmp_path / "t.csv"
    path.write_bytes(TABLE.encode())
    with pytest.raises(DataError, match=message):
        label_rows(CsvOptions(str(path)), "own.t", labels, {"line 4", "line 6"})
    assert path.read_bytes() == TABLE.encode()


def test_csv_rows_named_by_their_id_and_labelled_rows_keep_their_label(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,f,label\nr1,1,a\nr2,2,\nr3,3,b\n")
    options = CsvOptions(str(path), id_column="id")
    assert label_rows(options, "own.t", {"r2": "a"}, {"r2"}) == ["r2"]
    assert path.read_text() == "id,f,label\nr1,1,a\nr2,2,a\nr3,3,b\n"
    with pytest.raises(DataError, match="own.t: r3 is labelled 'b' already, and bal never changes a label"):
        label_rows(options, "own.t", {"r3": "a"}, {"r3"})


def test_the_labels_command_applies_an_export_or_says_why_not(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("f,label\n1,a\n2,b\n3,\n4,\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["own"] = {"t": {"source": "csv", "path": "data/t.csv"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "suggestions").mkdir()
    (tmp_path / "suggestions" / "t.csv").write_text("rank,item,score,predicted_class,probability\n1,line 4,0.3,a,0.6\n")
    run = lambda *args: subprocess.run([sys.executable, str(ROOT / "tools" / "labels.py"), *args], cwd=tmp_path,  # noqa: E731
                                       capture_output=True, text=True)
    (tmp_path / "e.json").write_text(json.dumps([annotated("line 4", "b"), annotated("line 5", "a")]))
    refused = run("apply", "t", "e.json")
    assert refused.returncode == 2 and refused.stderr == ("error: own.t: bal never suggested line 5 (it is not among the "
                                                          "suggestions); nothing was applied.\n")
    assert (tmp_path / "data" / "t.csv").read_text() == "f,label\n1,a\n2,b\n3,\n4,\n"
    (tmp_path / "e.json").write_text(json.dumps([annotated("line 4", "b")]))
    applied = run("apply", "t", "e.json")
    assert applied.returncode == 0 and "t: 1 labels applied" in applied.stdout
    assert (tmp_path / "data" / "t.csv").read_text() == "f,label\n1,a\n2,b\n3,b\n4,\n"  # line 4 of the file
    assert run("apply", "nope", "e.json").stderr.startswith("error: 'nope' is not one of your own datasets")
