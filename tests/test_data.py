import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bal.data import (
    DataError, fetch_mnist, initial_indices, load_prepared, prepare_mnist, prepare_two_moons, save_prepared, two_moons,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist" / "raw"


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


def test_mnist_pool_and_validation_partition_the_training_set():
    ids = torch.arange(1000)
    train_x = torch.stack([ids % 256, ids // 256], dim=1).to(torch.uint8)[:, :, None]  # each image names its index
    train_y, test_x, test_y = ids % 10, torch.zeros(7, 2, 1, dtype=torch.uint8), torch.zeros(7, dtype=torch.long)
    arrays = prepare_mnist(train_x, train_y, test_x, test_y, n_validation=100, seed=3)

    def index(x):
        return (x[:, 0, 0].astype(int) + 256 * x[:, 1, 0].astype(int)).tolist()

    pool, val = index(arrays["pool_x"]), index(arrays["val_x"])
    assert len(pool) == 900 and len(val) == 100 and not set(pool) & set(val) and set(pool) | set(val) == set(range(1000))
    assert (arrays["pool_y"] == np.array(pool) % 10).all() and (arrays["val_y"] == np.array(val) % 10).all()
    assert len(arrays["test_y"]) == 7
    assert index(prepare_mnist(train_x, train_y, test_x, test_y, 100, seed=3)["val_x"]) == val
    assert index(prepare_mnist(train_x, train_y, test_x, test_y, 100, seed=4)["val_x"]) != val
    assert "dev_x" not in arrays


def test_mnist_dev_split_is_held_out_of_pool_and_validation():
    ids = torch.arange(1000)
    train_x = torch.stack([ids % 256, ids // 256], dim=1).to(torch.uint8)[:, :, None]
    args = (train_x, ids % 10, torch.zeros(7, 2, 1, dtype=torch.uint8), torch.zeros(7, dtype=torch.long))

    def parts(n_validation, n_dev):
        arrays = prepare_mnist(*args, n_validation=n_validation, seed=3, n_dev=n_dev)
        return {name: (arrays[f"{name}_x"][:, 0, 0].astype(int) + 256 * arrays[f"{name}_x"][:, 1, 0].astype(int)).tolist()
                for name in ("pool", "val", "dev") if f"{name}_x" in arrays}

    split = parts(100, 250)
    assert [len(split[n]) for n in ("pool", "val", "dev")] == [650, 100, 250]
    assert set(split["pool"]) | set(split["val"]) | set(split["dev"]) == set(range(1000))
    assert not set(split["dev"]) & (set(split["pool"]) | set(split["val"]))
    assert parts(100, 0)["val"] == split["val"]  # the dev split leaves the validation images as they were
    assert parts(400, 250)["dev"] == split["dev"] and set(split["val"]) <= set(parts(400, 250)["val"])


def test_prepared_roundtrip_and_tamper_detection(tmp_path):
    arrays = prepare_two_moons(50, 10, 20, 0.1, seed=0)
    save_prepared(arrays, tmp_path / "moons")
    split = load_prepared(tmp_path / "moons")
    assert split.pool_x.shape == (50, 2) and split.test_y.shape == (20,) and split.classes == 2
    assert split.dev_x is None
    save_prepared({**arrays, "dev_x": arrays["test_x"][:5], "dev_y": arrays["test_y"][:5]}, tmp_path / "dev")
    assert torch.equal(load_prepared(tmp_path / "dev").dev_y, torch.from_numpy(arrays["test_y"][:5]).long())
    np.save(tmp_path / "moons" / "pool_y.npy", np.zeros(50, dtype=np.int64))
    with pytest.raises(DataError, match="pool_y.npy is missing or does not match its checksum"):
        load_prepared(tmp_path / "moons")


def test_missing_prepared_folder(tmp_path):
    with pytest.raises(DataError, match="run the prepare stage"):
        load_prepared(tmp_path / "nothing")


@pytest.fixture
def mnist_copy(tmp_path):
    if not SHARED_MNIST.is_dir():
        pytest.skip("no local MNIST copy")
    copy = tmp_path / "copy"
    shutil.copytree(SHARED_MNIST, copy)
    return copy


def test_corrupt_mnist_file_is_named(tmp_path, mnist_copy):
    target = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        fetch_mnist(tmp_path / "root", mnist_copy)


def test_missing_mnist_file_is_named(tmp_path, mnist_copy):
    (mnist_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is missing"):
        fetch_mnist(tmp_path / "root", mnist_copy)


def test_mnist_from_local_copy(tmp_path, mnist_copy):
    train_x, train_y, test_x, test_y = fetch_mnist(tmp_path / "root", mnist_copy)
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    with gzip.open(mnist_copy / "t10k-labels-idx1-ubyte.gz") as f:
        assert f.read()[8:18] == bytes(test_y[:10].tolist())


def test_repeated_pool_copies_with_noise(tmp_path):
    arrays = prepare_two_moons(50, 10, 20, 0.1, seed=0)
    save_prepared(arrays, tmp_path / "rep", repeat={"times": 3, "noise_std": 0.1, "seed": 0})
    split = load_prepared(tmp_path / "rep")
    base = torch.from_numpy(arrays["pool_x"])
    assert split.pool_x.shape == (150, 2) and split.pool_y.tolist() == arrays["pool_y"].tolist() * 3
    noise = split.pool_x - base.repeat(3, 1)
    assert 0.08 < noise.std().item() < 0.12
    assert not torch.equal(split.pool_x[:50], split.pool_x[50:100])
    assert torch.equal(split.test_x, torch.from_numpy(arrays["test_x"]))  # test set unchanged


def test_corrupt_manifest(tmp_path):
    save_prepared(prepare_two_moons(50, 10, 20, 0.1, seed=0), tmp_path / "moons")
    (tmp_path / "moons" / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="manifest.json is corrupt"):
        load_prepared(tmp_path / "moons")
