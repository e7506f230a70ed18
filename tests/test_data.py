import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bal.errors import DataError
from bal.loop import initial_indices
from bal.prepared import Prepared, load_prepared, normalisation, save_prepared
from bal.sources.torchvision import fetch_torchvision
from bal.sources.twomoons import prepare_two_moons, two_moons
from bal.splits import split_arrays, stratified_holdout

# the folders the stages read offline (the Makefile sets both where they exist)
SHARED_MNIST = Path(os.environ.get("BAL_MNIST_RAW") or Path(__file__).resolve().parents[2] / "shared/datasets/mnist/raw")
DEBIAN_FASHION = Path(os.environ.get("BAL_FASHION_MNIST_RAW") or "/usr/share/datasets/fashion-mnist")


def test_two_moons_shapes_balance_and_seed():
    x, y = two_moons(100, 0.1, torch.Generator().manual_seed(0))
    assert x.shape == (100, 2) and y.tolist().count(0) == 50
    again, _ = two_moons(100, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_initial_set_is_balanced_and_depends_only_on_seed():
    pool_y = torch.arange(1000) % 10
    a = initial_indices(pool_y, 2, seed=3)
    assert sorted(pool_y[a].tolist()) == sorted(list(range(10)) * 2)
    assert a == initial_indices(pool_y, 2, seed=3)
    assert a != initial_indices(pool_y, 2, seed=4)


def test_initial_set_too_large_for_a_class():
    with pytest.raises(DataError, match="class 1 has only 1 pool points"):
        initial_indices(torch.tensor([0, 0, 1]), 2, seed=0)


def ids(n):
    """Items that name their own index: x[i] = (i % 256, i // 256)."""
    return np.stack([np.arange(n) % 256, np.arange(n) // 256], axis=1).astype(np.uint8)


def index(arrays, name):
    x = arrays[f"{name}_x"]
    x = x[0][x[1]] if isinstance(x, tuple) else x
    return (x[:, 0].astype(int) + 256 * x[:, 1].astype(int)).tolist()


def test_given_test_set_pool_validation_and_dev_partition_the_rest():
    x, y = ids(1000), np.arange(1000) % 10
    test = (ids(7), np.zeros(7, dtype=np.int64))

    def parts(n_validation, n_dev, seed=3):
        arrays = split_arrays(x, y, "prepare.d", n_validation, n_dev, seed, test)
        assert arrays["test_y"] is test[1]
        return {name: index(arrays, name) for name in ("pool", "val", "dev") if f"{name}_x" in arrays}, arrays

    split, arrays = parts(100, 250)
    assert [len(split[n]) for n in ("pool", "val", "dev")] == [650, 100, 250]
    assert set(split["pool"]) | set(split["val"]) | set(split["dev"]) == set(range(1000))
    assert not set(split["dev"]) & (set(split["pool"]) | set(split["val"])) and not set(split["pool"]) & set(split["val"])
    assert (arrays["pool_y"] == np.array(split["pool"]) % 10).all()
    without_dev, _ = parts(100, 0)
    assert "dev" not in without_dev and without_dev["val"] == split["val"]  # the dev split leaves validation as it was
    assert parts(400, 250)[0]["dev"] == split["dev"] and set(split["val"]) <= set(parts(400, 250)[0]["val"])
    assert parts(100, 250, seed=4)[0]["val"] != split["val"]


def test_a_test_set_the_source_lacks_is_held_out_class_by_class():
    y = np.array([0] * 500 + [1] * 333 + [2] * 167)
    held, rest = stratified_holdout(y, 100, torch.Generator().manual_seed(0))
    assert np.bincount(y[held]).tolist() == [50, 33, 17] and len(set(held) | set(rest)) == 1000  # 16.7 rounds up
    arrays = split_arrays(ids(1000), y, "prepare.d", 50, 0, 0, n_test=100)
    assert sorted(index(arrays, "test")) == sorted(held.tolist())  # the same seed: the same held-out items
    assert not set(index(arrays, "test")) & set(index(arrays, "pool") + index(arrays, "val"))
    with pytest.raises(DataError, match="prepare.d.n_test = 1000: the source holds only 1000 labelled items"):
        split_arrays(ids(1000), y, "prepare.d", 50, 0, 0, n_test=1000)
    with pytest.raises(DataError, match="prepare.d: n_validation \\(800\\) and n_dev \\(100\\) leave no pool"):
        split_arrays(ids(1000), y, "prepare.d", 800, 100, 0, n_test=100)


def test_an_unbalanced_pool_thins_its_rare_classes_and_nothing_else():
    x, y = ids(2000), np.arange(2000) % 4
    test = (ids(8), np.arange(8) % 4)
    balanced = split_arrays(x, y, "prepare.d", 100, 200, 0, test)
    thinned = split_arrays(x, y, "prepare.d", 100, 200, 0, test, rare_classes=[0, 1], rare_keep=0.1)
    assert index(thinned, "val") == index(balanced, "val") and index(thinned, "dev") == index(balanced, "dev")
    before, after = np.bincount(balanced["pool_y"]), np.bincount(thinned["pool_y"])
    assert after[2:].tolist() == before[2:].tolist() and after[:2].tolist() == np.round(0.1 * before[:2]).astype(int).tolist()
    assert set(index(thinned, "pool")) < set(index(balanced, "pool"))


def test_a_target_set_leaves_dev_with_the_test_class_mix_and_the_rest_as_it_was():
    x, y = ids(2000), np.arange(2000) % 4
    test = (ids(10), np.array([0] * 4 + [1] * 3 + [2] * 2 + [3]))  # class mix 40 / 30 / 20 / 10 %
    plain = split_arrays(x, y, "prepare.d", 100, 400, 0, test, rare_classes=[0, 1], rare_keep=0.1)
    target = split_arrays(x, y, "prepare.d", 100, 400, 0, test, rare_classes=[0, 1], rare_keep=0.1, n_target=150)
    for name in ("pool", "val"):
        assert index(target, name) == index(plain, name)
    assert target["test_x"] is test[0] and "target_y" not in target  # unlabelled: EPIG never sees a label
    targets, dev = index(target, "target"), index(target, "dev")
    assert len(targets) == 150 and sorted(targets + dev) == sorted(index(plain, "dev")) and not set(targets) & set(dev)
    assert np.bincount(y[targets]).tolist() == [60, 45, 30, 15]  # the test set's mix, not the pool's
    assert (target["dev_y"] == np.array(dev) % 4).all()
    with pytest.raises(DataError, match="prepare.d.n_target = 300: the dev split of 400 cannot supply the test set's class mix: class 0 has 105 "
                                        "items to draw from, fewer than its share 120 of 300"):
        split_arrays(x, y, "prepare.d", 100, 400, 0, test, n_target=300)


def test_prepared_roundtrip_normalisation_and_tamper_detection(tmp_path):
    arrays = prepare_two_moons(50, 10, 20, 0.1, seed=0)
    save_prepared(arrays, tmp_path / "moons")
    split = load_prepared(tmp_path / "moons")
    assert split.pool_x.shape == (50, 2) and split.test_y.shape == (20,) and split.classes == 2
    assert split.dev_x is None and split.kind == "table"
    assert torch.equal(split.pool_x, torch.from_numpy(arrays["pool_x"]))  # TwoMoons keeps its raw plane
    images = np.random.default_rng(0).integers(0, 256, (30, 3, 4, 4), dtype=np.uint8)
    y = np.arange(30) % 3
    image_arrays = split_arrays(images, y, "prepare.d", 5, 0, 0, n_test=6)
    save_prepared(Prepared(image_arrays, "image", ["a", "b", "c"], normalisation(image_arrays["pool_x"])), tmp_path / "img")
    image_split = load_prepared(tmp_path / "img")
    assert image_split.pool_x.shape == (19, 3, 4, 4) and image_split.class_names == ("a", "b", "c")
    per_channel = image_split.pool_x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)  # the pool's own statistics
    assert torch.allclose(per_channel.std(1, correction=0), torch.ones(3), atol=1e-4)
    np.save(tmp_path / "moons" / "pool_y.npy", np.zeros(50, dtype=np.int64))
    with pytest.raises(DataError, match="pool_y.npy is missing or does not match its checksum"):
        load_prepared(tmp_path / "moons")


def test_missing_prepared_folder(tmp_path):
    with pytest.raises(DataError, match="run the prepare stage"):
        load_prepared(tmp_path / "nothing")


def test_corrupt_manifest(tmp_path):
    save_prepared(prepare_two_moons(50, 10, 20, 0.1, seed=0), tmp_path / "moons")
    (tmp_path / "moons" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json is corrupt"):
        load_prepared(tmp_path / "moons")


def test_repeated_pool_copies_with_noise(tmp_path):
    arrays = prepare_two_moons(50, 10, 20, 0.1, seed=0)
    prepared = Prepared(arrays, "table", ["0", "1"], repeat={"times": 3, "noise_std": 0.1, "seed": 0})
    save_prepared(prepared, tmp_path / "rep")
    split = load_prepared(tmp_path / "rep")
    base = torch.from_numpy(arrays["pool_x"])
    assert split.pool_x.shape == (150, 2) and split.pool_y.tolist() == arrays["pool_y"].tolist() * 3
    noise = split.pool_x - base.repeat(3, 1)
    assert 0.08 < noise.std().item() < 0.12
    assert not torch.equal(split.pool_x[:50], split.pool_x[50:100])
    assert torch.equal(split.test_x, torch.from_numpy(arrays["test_x"]))  # test set unchanged


@pytest.fixture(params=["mnist", "fashion_mnist"])
def local_copy(request, tmp_path):
    source = SHARED_MNIST if request.param == "mnist" else DEBIAN_FASHION
    if not source.is_dir():
        pytest.skip(f"no local copy of {request.param} at {source}")
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    return request.param, copy


def test_corrupt_file_is_named(tmp_path, local_copy):
    name, copy = local_copy
    target = copy / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        fetch_torchvision(name, tmp_path / "root", copy)


def test_altered_content_is_refused(tmp_path, local_copy):
    name, copy = local_copy
    target = copy / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[-1] = (content[-1] + 1) % 10  # one label changed, still a valid gzip file
    target.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        fetch_torchvision(name, tmp_path / "root", copy)


def test_missing_file_is_named(tmp_path, local_copy):
    name, copy = local_copy
    (copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=f"train-labels-idx1-ubyte.gz is missing; BAL_{name.upper()}_RAW must name"):
        fetch_torchvision(name, tmp_path / "root", copy)


def test_from_local_copy(tmp_path, local_copy):
    name, copy = local_copy
    train_x, train_y, test_x, test_y = fetch_torchvision(name, tmp_path / "root", copy)
    assert train_x.shape == (60000, 1, 28, 28) and test_x.shape == (10000, 1, 28, 28) and train_x.dtype == np.uint8
    first = {"mnist": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], "fashion_mnist": [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]}[name]
    assert train_y[:10].tolist() == first
    with gzip.open(copy / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read()[8:18] == bytes(test_y[:10].tolist())
