"""Own data a labelling team can trust: the image, CSV and npz defects of the own-data issue, each with
a test that failed before its fix."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bal.errors import DataError
from bal.prepared import load_prepared, save_prepared
from bal.sources import FileOptions, prepare
from bal.sources.csv import Options as CsvOptions
from bal.sources.image_folder import Options as ImageFolderOptions


def build(source, options, tmp_path):
    save_prepared(prepare(source, options, "own.mine", tmp_path / "raw", {}), tmp_path / "prepared")
    return load_prepared(tmp_path / "prepared")


def images(folder, n, size=(20, 18), start=0, value=100):
    """``n`` grey PNGs of ``size`` (width, height) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        pixels = np.clip(rng.normal(value, 10, (size[1], size[0])), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "L").save(folder / f"{i}.png")


def test_non_square_images_with_their_own_test_set_and_unlabelled_items(tmp_path):
    for c, name in enumerate(("a", "b")):
        images(tmp_path / "imgs" / name, 8, value=60 + 80 * c)
        images(tmp_path / "imgs" / "test" / name, 2, value=60 + 80 * c)
    images(tmp_path / "imgs" / "unlabelled", 3)
    split = build("image_folder", ImageFolderOptions(str(tmp_path / "imgs"), n_validation=2), tmp_path)
    assert split.pool_x.shape[1:] == split.test_x.shape[1:] == split.unlabelled_x.shape[1:] == (1, 18, 20)


def test_test_images_of_another_size_are_refused_not_resized(tmp_path):
    for name in ("a", "b"):
        images(tmp_path / "imgs" / name, 6)
        images(tmp_path / "imgs" / "test" / name, 2, size=(24, 24))
    with pytest.raises(DataError, match=r"test/a/0.png is 24x24, but the labelled images are 20x18; set own.mine.size"):
        build("image_folder", ImageFolderOptions(str(tmp_path / "imgs"), n_validation=2), tmp_path)


def test_hidden_folders_and_files_are_not_classes_or_items(tmp_path):
    for name in ("a", "b", ".ipynb_checkpoints", "__MACOSX"):
        images(tmp_path / "imgs" / name, 6)
    images(tmp_path / "imgs" / "a" / ".thumbs", 2)
    Image.new("L", (20, 18)).save(tmp_path / "imgs" / "b" / "._0.png")
    split = build("image_folder", ImageFolderOptions(str(tmp_path / "imgs"), n_validation=2, n_test=2), tmp_path)
    assert split.class_names == ("a", "b") and len(split.pool_y) + 4 == 12


def test_numbered_class_folders_are_in_numeric_order_as_in_csv_and_npz(tmp_path):
    for name in ("10", "2", "1"):
        images(tmp_path / "imgs" / name, 6)
    split = build("image_folder", ImageFolderOptions(str(tmp_path / "imgs"), n_validation=2, n_test=3), tmp_path)
    assert split.class_names == ("1", "2", "10")


def table(tmp_path, text):
    (tmp_path / "t.csv").write_text(text)
    return str(tmp_path / "t.csv")


ROWS = "".join(f"{i},{i % 3 - 1.0},{'yes' if i % 2 else 'no'}\n" for i in range(12))


def test_a_csv_item_is_named_by_its_true_file_line_after_a_blank_line(tmp_path):
    path = table(tmp_path, "f,g,label\n" + ROWS + "\n12,0.5,\n13,0.5,yes\n")
    split = build("csv", CsvOptions(path, n_validation=2, n_test=3), tmp_path)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert split.unlabelled_items == ("line 15",) and lines[14] == "12,0.5,"


def test_a_csv_id_column_names_the_items_and_is_no_feature(tmp_path):
    path = table(tmp_path, "id,f,label\n" + "".join(f"r{i},{i},{'yes' if i % 2 else 'no'}\n" for i in range(12)) + "r12,3,\n")
    split = build("csv", CsvOptions(path, id_column="id", n_validation=2, n_test=3), tmp_path)
    assert split.unlabelled_items == ("r12",) and split.pool_x.shape[1] == 1


@pytest.mark.parametrize("text, options, message", [
    (",f,label\n" + "".join(f"{i},{i},{'yes' if i % 2 else 'no'}\n" for i in range(12)), {},
     "t.csv has a column without a name (pandas writes its index so); drop it, or name it and set own.mine.id_column"),
    ("id,f,label\n" + "".join(f"r{i % 5},{i},{'yes' if i % 2 else 'no'}\n" for i in range(12)), {"id_column": "id"},
     "t.csv: own.mine.id_column 'id' repeats 'r0' (lines 2 and 7); each item needs its own id"),
    ("f,label\n1,a\n", {"id_column": "id"}, "t.csv has no column 'id' (own.mine.id_column)"),
])
def test_bad_csv_ids_are_named(tmp_path, text, options, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build("csv", CsvOptions(table(tmp_path, text), n_validation=2, n_test=3, **options), tmp_path)


def test_csv_labels_differing_only_in_spaces_are_one_class(tmp_path):
    path = table(tmp_path, "f,label\n" + "".join(f"{i},{'cat ' if i % 3 == 0 else 'cat' if i % 3 == 1 else 'dog'}\n"
                                                 for i in range(12)))
    split = build("csv", CsvOptions(path, n_validation=2, n_test=3), tmp_path)
    assert split.class_names == ("cat", "dog")


def test_npz_channels_last_images_are_read_as_channels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (12, 16, 18, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(12) % 2)
    split = build("npz", FileOptions(str(tmp_path / "d.npz"), n_validation=2, n_test=2), tmp_path)
    assert split.pool_x.shape[1:] == (3, 16, 18)
    stored = np.load(tmp_path / "prepared" / "pool_x.npy")  # uint8, as the file holds them, before normalising
    channels_first = [image.transpose(2, 0, 1) for image in x]
    assert all(any(np.array_equal(row, image) for image in channels_first) for row in stored)


def test_npz_unlabelled_items_for_suggest(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(12, 3)), y=np.arange(12) % 2, x_unlabelled=rng.normal(size=(4, 3)),
             ids_unlabelled=np.array(["u1", "u2", "u3", "u4"]))
    split = build("npz", FileOptions(str(tmp_path / "d.npz"), n_validation=2, n_test=2), tmp_path)
    assert split.unlabelled_x.shape == (4, 3) and split.unlabelled_items == ("u1", "u2", "u3", "u4")


def prepare_stage(work, dataset="mine"):
    import subprocess
    import sys
    from pathlib import Path

    stage = Path(__file__).resolve().parents[1] / "stages" / "prepare.py"
    result = subprocess.run([sys.executable, str(stage), "--dataset", dataset, "--out", "prepared",
                             "--record", "splits.csv"], cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {name: np.load(work / "prepared" / f"{name}.npy") for name in ("pool_x", "val_x", "test_x")}


@pytest.mark.parametrize("source", ["csv", "image_folder"])
def test_labelling_ten_items_leaves_test_and_validation_and_grows_the_pool_by_those_ten(tmp_path, source):
    """Splits are keyed by item identity and recorded: prepare, label 10 of the unlabelled items (rows
    given their label, or images moved into their class folder), prepare again."""
    import yaml
    from pathlib import Path

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    rng = np.random.default_rng(0)
    if source == "csv":
        x = rng.normal(size=(60, 2)).round(6)
        label = np.where(x[:, 0] > 0, "a", "b").astype(object)
        truth, label[40:] = label.copy(), ""
        write = lambda: pd.DataFrame({"f": x[:, 0], "g": x[:, 1], "label": label}).to_csv(tmp_path / "t.csv", index=False)  # noqa: E731
        write()
        entry = {"source": "csv", "path": "t.csv", "n_validation": 5, "n_test": 8}
    else:
        for c, name in enumerate(("a", "b")):
            images(tmp_path / "imgs" / name, 20, start=100 * c, value=60 + 80 * c)
        images(tmp_path / "imgs" / "unlabelled", 20, start=500)
        entry = {"source": "image_folder", "path": "imgs", "n_validation": 5, "n_test": 8}
    params["own"] = {"mine": entry}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = prepare_stage(tmp_path)
    if source == "csv":
        label[40:50] = truth[40:50]
        write()
    else:
        for i in range(500, 510):
            (tmp_path / "imgs" / "unlabelled" / f"{i}.png").rename(tmp_path / "imgs" / "a" / f"{i}.png")
    after = prepare_stage(tmp_path)
    assert np.array_equal(after["test_x"], before["test_x"]) and np.array_equal(after["val_x"], before["val_x"])
    assert len(after["pool_x"]) == len(before["pool_x"]) + 10
    assert all(any(np.array_equal(row, old) for old in after["pool_x"]) for row in before["pool_x"])
    recorded = pd.read_csv(tmp_path / "splits.csv")
    assert len(recorded) == 50 and (recorded.split == "pool").sum() == len(after["pool_x"])


def test_a_record_of_other_items_is_refused_not_taken_for_an_empty_split(tmp_path):
    """A record none of whose validation or test items exist any more (another path, renamed files) would
    leave those splits empty: refused in one sentence."""
    from bal.splits import split_by_identity

    y = np.arange(20) % 2
    _, record = split_by_identity(np.zeros((20, 1)), y, [f"a{i}" for i in range(20)], None, "own.mine", 3, 0, 0, None, 4)
    with pytest.raises(DataError, match="own.mine: no item of the recorded val split is an item now"):
        split_by_identity(np.zeros((20, 1)), y, [f"b{i}" for i in range(20)], record, "own.mine", 3, 0, 0, None, 4)


@pytest.mark.parametrize("text", ["", "item,split\nx,pool\nx,test\n", "item,where\nx,pool\n", 'item,split\n"x,pool\n'])
def test_a_broken_split_record_is_named_in_one_sentence(tmp_path, text):
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    pd.DataFrame({"f": np.arange(24), "label": np.arange(24) % 2}).to_csv(tmp_path / "t.csv", index=False)
    params["own"] = {"mine": {"source": "csv", "path": "t.csv", "n_validation": 2, "n_test": 4}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "splits.csv").write_text(text)
    stage = Path(__file__).resolve().parents[1] / "stages" / "prepare.py"
    result = subprocess.run([sys.executable, str(stage), "--dataset", "mine", "--out", "prepared", "--record",
                             "splits.csv"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "splits.csv must have the columns item and split (one of pool, val, dev, test), each item once" in result.stderr


def test_an_image_moved_to_another_class_folder_stays_in_its_split(tmp_path):
    """Correcting a test image's label (moving its file to another class folder) keeps it the same item: the
    test set keeps it, with its new label, and the pool does not take it in as a new item."""
    for c, name in enumerate(("a", "b")):
        images(tmp_path / "imgs" / name, 20, start=100 * c, value=60 + 80 * c)
    options, record = ImageFolderOptions(str(tmp_path / "imgs"), n_validation=4, n_test=8), {}
    save_prepared(prepare("image_folder", options, "own.mine", tmp_path / "raw", {}, record), tmp_path / "before")
    test_x = np.load(tmp_path / "before" / "test_x.npy")
    moved = next(p for p in sorted((tmp_path / "imgs" / "a").iterdir())
                 if any(np.array_equal(np.asarray(Image.open(p))[None], row) for row in test_x))
    moved.rename(tmp_path / "imgs" / "b" / moved.name)
    save_prepared(prepare("image_folder", options, "own.mine", tmp_path / "raw", {}, record), tmp_path / "after")
    after = {name: np.load(tmp_path / "after" / f"{name}.npy") for name in ("test_x", "test_y", "pool_x")}
    assert sorted(map(bytes, after["test_x"])) == sorted(map(bytes, test_x))
    assert len(after["pool_x"]) == len(np.load(tmp_path / "before" / "pool_x.npy"))
    assert np.bincount(after["test_y"]).tolist() == [3, 5]  # 4 + 4 before


def test_npz_items_without_ids_keep_their_split_when_items_are_added_before_them(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)).astype(np.float32), np.arange(30) % 2
    options, record = FileOptions(str(tmp_path / "d.npz"), n_validation=4, n_test=6), {}
    splits = []
    for i, (xs, ys) in enumerate([(x, y), (np.concatenate([rng.normal(size=(2, 3)).astype(np.float32), x]), np.r_[0, 1, y])]):
        np.savez(tmp_path / "d.npz", x=xs, y=ys)
        save_prepared(prepare("npz", options, "own.mine", tmp_path / "raw", {}, record), tmp_path / f"p{i}")
        splits.append({name: sorted(map(bytes, np.load(tmp_path / f"p{i}" / f"{name}_x.npy"))) for name in ("pool", "val", "test")})
    assert splits[1]["val"] == splits[0]["val"] and splits[1]["test"] == splits[0]["test"]
    assert len(splits[1]["pool"]) == len(splits[0]["pool"]) + 2


@pytest.mark.parametrize("shape", [(12, 4, 16, 16), (12, 16, 16, 4)])
def test_npz_images_with_an_alpha_channel_are_refused(tmp_path, shape):
    np.savez(tmp_path / "d.npz", x=np.zeros(shape, dtype=np.uint8), y=np.arange(12) % 2)
    with pytest.raises(DataError, match=r"d.npz: x images of shape \(.*\) have neither 1 nor 3 channels on the first or the "
                                        r"last axis; images need 1 \(grey\) or 3 \(RGB\) channels"):
        prepare("npz", FileOptions(str(tmp_path / "d.npz"), n_validation=2, n_test=2), "own.mine", tmp_path, {})
