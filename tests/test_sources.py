"""Your own data: image folders, .npz arrays and CSV tables, on small generated files, and every bad
input named in one sentence."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bal.errors import DataError, Invalid
from bal.prepared import load_prepared, save_prepared
from bal.sources import FileOptions, npz, prepare
from bal.sources import image_folder as image_folder_source
from bal.sources.csv import Options as CsvOptions
from bal.sources.image_folder import Options as ImageFolderOptions


def build(source, options, tmp_path):
    save_prepared(prepare(source, options, "own.mine", tmp_path / "raw", {}), tmp_path / "prepared")
    return load_prepared(tmp_path / "prepared")


def image_folder(root: Path, classes=("cat", "dog", "owl"), per_class=12, size=(20, 18), mode="L", test=0, unlabelled=0):
    """Generated images whose mean brightness encodes their class, saved as PNG (and one JPEG per class)."""
    rng = np.random.default_rng(0)
    for split, n in (("", per_class), ("test", test), ("unlabelled", unlabelled)):
        for c, name in enumerate(classes):
            if n == 0 or (split == "unlabelled" and c):
                continue
            folder = root / split / name if split != "unlabelled" else root / "unlabelled"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
                pixels = np.clip(rng.normal(60 * c + 40, 10, shape), 0, 255).astype(np.uint8)
                suffix = ".jpg" if i == 0 else ".png"
                Image.fromarray(pixels, mode).save(folder / f"{name}_{i}{suffix}")
    return root


def test_image_folder_classes_splits_and_normalisation(tmp_path):
    root = image_folder(tmp_path / "imgs", per_class=20)
    split = build("image_folder", ImageFolderOptions(str(root), n_validation=6, n_test=9, seed=1), tmp_path)
    assert split.class_names == ("cat", "dog", "owl") and split.kind == "image"
    assert split.pool_x.shape == (45, 1, 18, 20) and len(split.val_y) == 6 and len(split.test_y) == 9
    assert torch.bincount(split.test_y).tolist() == [3, 3, 3]  # held out class by class
    assert abs(split.pool_x.mean().item()) < 1e-5  # the pool's own statistics
    brightness = split.pool_x.mean(dim=(1, 2, 3))
    assert (brightness[split.pool_y == 2].min() > brightness[split.pool_y == 0].max()).item()  # labels follow folders


def test_image_folder_with_its_own_test_set_rgb_resized_and_unlabelled(tmp_path):
    root = image_folder(tmp_path / "imgs", classes=("a", "b"), size=(30, 24), mode="RGB", test=4, unlabelled=5)
    split = build("image_folder", ImageFolderOptions(str(root), channels=3, size=16, n_validation=4), tmp_path)
    assert split.pool_x.shape == (20, 3, 16, 16) and split.test_x.shape == (8, 3, 16, 16)
    assert split.unlabelled_x.shape == (5, 3, 16, 16)
    assert split.unlabelled_items == tuple(f"unlabelled/a_{i}{'.jpg' if i == 0 else '.png'}" for i in range(5))


def test_npz_table_and_images(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "table.npz", x=rng.normal(5, 3, (200, 4)), y=np.repeat(["no", "yes"], 100))
    split = build("npz", npz.Options(str(tmp_path / "table.npz"), n_validation=10, n_test=40), tmp_path)
    assert split.kind == "table" and split.pool_x.shape == (150, 4) and split.class_names == ("no", "yes")
    assert torch.allclose(split.pool_x.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(split.pool_x.std(0, correction=0), torch.ones(4), atol=1e-4)
    np.savez(tmp_path / "images.npz", x=rng.integers(0, 256, (60, 20, 20), dtype=np.uint8), y=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (9, 20, 20), dtype=np.uint8), y_test=np.arange(9) % 3)
    split = build("npz", npz.Options(str(tmp_path / "images.npz"), n_validation=5), tmp_path)
    assert split.kind == "image" and split.pool_x.shape == (55, 1, 20, 20) and split.test_x.shape == (9, 1, 20, 20)
    assert split.class_names == ("0", "1", "2")


def test_csv_features_labels_and_unlabelled_rows(tmp_path):
    rows = ["height,weight,label"] + [f"{i},{i % 7},{'tall' if i % 2 else 'short'}" for i in range(100)]
    rows[5] = "4,4,"  # no label: an item to suggest
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    split = build("csv", CsvOptions(str(tmp_path / "t.csv"), n_validation=5, n_test=10), tmp_path)
    assert split.kind == "table" and split.class_names == ("short", "tall")
    assert len(split.pool_y) + len(split.val_y) + len(split.test_y) == 99
    assert split.unlabelled_items == ("line 6",) and split.unlabelled_x.shape == (1, 2)


BAD_FOLDERS = [
    ("missing", lambda root: None, "own.mine.path = '{root}': no such folder"),
    ("empty", lambda root: root.mkdir(), "own.mine.path = '{root}' has no class subfolders"),
    ("no images", lambda root: [(root / c).mkdir(parents=True) for c in "ab"], "its class folders hold no images"),
    ("one class", lambda root: image_folder(root, classes=("only",)), "holds only one class (only)"),
    ("mixed sizes", lambda root: (image_folder(root), Image.new("L", (5, 7)).save(root / "dog" / "odd.png")),
     "odd.png is 5x7, but"),
    ("broken image", lambda root: (image_folder(root), (root / "owl" / "broken.png").write_bytes(b"not a png")),
     "broken.png is not a readable image"),
    ("unseen test class", lambda root: (image_folder(root), image_folder(root / "test", classes=("bat",), per_class=2)),
     "the test set has class 'bat', which the labelled items never have"),
]


@pytest.mark.parametrize("name, make, message", BAD_FOLDERS, ids=[b[0] for b in BAD_FOLDERS])
def test_bad_image_folders_are_named(tmp_path, name, make, message):
    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(DataError, match=None) as err:
        prepare("image_folder", ImageFolderOptions(str(root)), "own.mine", tmp_path / "raw", {})
    assert message.format(root=root) in str(err.value) and str(err.value).count("\n") == 0


BAD_CSV = [
    ("no label column", "a,b\n1,2\n3,4\n", "has no column 'label' (own.mine.label_column); its columns: a, b"),
    ("text feature", "a,b,label\n1,2,x\n3,four,y\n5,6,x\n", "line 3, column 'b': 'four' is not a number"),
    ("missing feature", "a,b,label\n1,2,x\n3,,y\n5,6,x\n", "line 3, column 'b': a missing value is not a number"),
    ("one class", "a,label\n1,x\n2,x\n3,x\n", "holds only one class (x)"),
]


@pytest.mark.parametrize("name, text, message", BAD_CSV, ids=[b[0] for b in BAD_CSV])
def test_bad_csv_is_named(tmp_path, name, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(DataError) as err:
        prepare("csv", CsvOptions(str(tmp_path / "t.csv"), n_test=1, n_validation=1), "own.mine", tmp_path, {})
    assert message in str(err.value)


def test_bad_npz_is_named(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((5, 2)))
    with pytest.raises(DataError, match="a.npz has no array 'y'; it needs x and y"):
        prepare("npz", npz.Options(str(tmp_path / "a.npz")), "own.mine", tmp_path, {})
    (tmp_path / "b.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="b.npz is not a readable .npz file"):
        prepare("npz", npz.Options(str(tmp_path / "b.npz")), "own.mine", tmp_path, {})


def test_image_extensions_are_torchvisions():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert image_folder_source.IMG_EXTENSIONS == IMG_EXTENSIONS


BAD_OPTIONS = [
    (ImageFolderOptions, {"channels": 2}, "channels = 2: must be 1 (grey) or 3 (RGB)."),
    (ImageFolderOptions, {"size": 0}, "size = 0: must be null (keep the images' size) or a number of pixels."),
    (CsvOptions, {"n_test": 0}, "n_test = 0: must be at least 1."),
    (FileOptions, {"n_dev": -1}, "n_dev = -1: must be non-negative."),
    (FileOptions, {"seed": -2}, "seed = -2: must be non-negative."),
]


@pytest.mark.parametrize("options, bad, message", BAD_OPTIONS, ids=[f"{o.__module__}-{next(iter(b))}" for o, b, _ in BAD_OPTIONS])
def test_bad_options_name_their_own_field(options, bad, message):
    """Each source's options check themselves on construction, naming the bare field (bal.config adds the key)."""
    with pytest.raises(Invalid) as err:
        options("somewhere", **bad)
    assert str(err.value) == message and err.value.field == next(iter(bad))
