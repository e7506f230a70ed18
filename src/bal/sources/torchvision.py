"""MNIST and Fashion-MNIST through torchvision: the 60,000 training images less validation and dev
form the pool; the 10,000 test images stay whole. Optionally an unbalanced pool (the EPIG paper's
setting: some classes thinned, with a target set for EPIG) or a repeated one (the BatchBALD paper's Repeated-MNIST: every pool
image ``repeats`` times, each copy with Gaussian noise, made when a learn stage loads it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bal.errors import DataError, require
from bal.io import atomic_write_bytes
from bal.prepared import Prepared, normalisation
from bal.sources import check_counts
from bal.splits import split_arrays

CLASS_NAMES = {"mnist": [str(c) for c in range(10)],
               "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                 "Bag", "Ankle boot"]}


@dataclass(frozen=True)
class Options:
    dataset: str  # mnist or fashion_mnist
    n_validation: int = 100
    n_dev: int = 0
    seed: int = 0
    rare_classes: list[int] | None = None  # an unbalanced pool (the EPIG paper): these classes thinned ...
    rare_keep: float = 1.0  # ... to this fraction of their pool items; validation, dev and test stay balanced
    n_target: int = 0  # EPIG's target set: unlabelled inputs with the test set's class mix, taken out of dev
    repeats: int = 1  # Repeated-MNIST: the pool this many times ...
    noise_std: float = 0.0  # ... each copy with isotropic Gaussian noise of this std (normalised units)

    def __post_init__(self):
        require(self.dataset in CLASS_NAMES, "dataset", self.dataset, f"must be one of {', '.join(CLASS_NAMES)}")
        check_counts(self)
        for c in self.rare_classes or ():
            require(0 <= c <= 9, "rare_classes", c, "must be classes 0 to 9")
        require(0 < self.rare_keep <= 1, "rare_keep", self.rare_keep, "must be a fraction in (0, 1]")
        require(self.n_target == 0 or 0 < self.n_target < self.n_dev, "n_target", self.n_target,
                f"must be 0 or below n_dev ({self.n_dev}): the target set is taken out of the dev split, which keeps the rest")
        require(self.repeats >= 1, "repeats", self.repeats, "must be at least 1")
        require(self.noise_std >= 0, "noise_std", self.noise_std, "must be non-negative")
        require(self.noise_std == 0 or self.repeats > 1, "noise_std", self.noise_std,
                "must be 0 unless repeats > 1 (the noise is added to the copies)")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# md5 of each original file's decompressed content: a local copy passes if its .gz matches
# torchvision's md5 or its content matches these. Debian's dataset-fashion-mnist recompressed the
# upstream .gz files (other .gz md5s); these content md5s were read from its files and, for MNIST,
# from the original .gz files that match torchvision's md5s.
CONTENT_MD5 = {
    "train-images-idx3-ubyte": {"mnist": "6bbc9ace898e44ae57da46a324031adb", "fashion_mnist": "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
    "train-labels-idx1-ubyte": {"mnist": "a25bea736e30d166cdddb491f175f624", "fashion_mnist": "9018921c3c673c538a1fc5bad174d6f9"},
    "t10k-images-idx3-ubyte": {"mnist": "2646ac647ad5339dbf082846283269ea", "fashion_mnist": "8181f5470baa50b63fa0f6fddb340f0a"},
    "t10k-labels-idx1-ubyte": {"mnist": "27ae3e4e09519cfbb04c329615203637", "fashion_mnist": "15d484375f8d13e6eb1aabb0c3f46965"},
}


def fetch_torchvision(name: str, root: Path, local_copy: Path | None) -> tuple[np.ndarray, ...]:
    """MNIST or Fashion-MNIST through torchvision as uint8 (train_x, train_y, test_x, test_y), images
    N x 1 x 28 x 28.

    With ``local_copy`` (a folder holding the four original ``.gz`` files) each file is checked
    (its md5 against torchvision's, or its content's against :data:`CONTENT_MD5`) and unpacked into
    torchvision's raw folder, where torchvision finds it. Without it, torchvision downloads and
    checks what is missing.
    """
    import gzip

    from torchvision.datasets import MNIST, FashionMNIST  # only here: keep torchvision off the hot path

    dataset = {"mnist": MNIST, "fashion_mnist": FashionMNIST}[name]
    variable = f"BAL_{name.upper()}_RAW"
    raw = root / dataset.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in dataset.resources if local_copy is not None else ():
        stem = Path(filename).name.removesuffix(".gz")
        source = local_copy / f"{stem}.gz"
        if not source.is_file():
            raise DataError(f"{dataset.__name__} file {source} is missing; {variable} must name a folder with {stem}.gz.")
        try:
            content = gzip.decompress(source.read_bytes())
        except (OSError, EOFError) as err:
            raise DataError(f"{dataset.__name__} file {source} is corrupt ({err}); replace it.") from None
        content_md5 = hashlib.md5(content).hexdigest()
        if _md5(source) != md5 and content_md5 != CONTENT_MD5[stem][name]:
            raise DataError(f"{dataset.__name__} file {source} is corrupt (md5 {_md5(source)}, expected {md5}, or "
                            f"content md5 {CONTENT_MD5[stem][name]}); replace it.")
        atomic_write_bytes(raw / stem, content)  # three prepare stages may unpack into this folder at once
    try:
        train, test = dataset(root, train=True, download=True), dataset(root, train=False, download=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"could not get {dataset.__name__} into {raw} ({err}); offline, set {variable} to a folder "
                        "holding the four original .gz files.") from None
    return train.data[:, None].numpy(), train.targets.numpy(), test.data[:, None].numpy(), test.targets.numpy()


def build(options: Options, key: str, context: dict) -> Prepared:
    name = options.dataset
    train_x, train_y, test_x, test_y = fetch_torchvision(name, context["raw_root"], context["local_copies"].get(name))
    arrays = split_arrays(train_x, train_y, key, options.n_validation, options.n_dev, options.seed, (test_x, test_y),
                          rare_classes=options.rare_classes, rare_keep=options.rare_keep, n_target=options.n_target)
    repeat = ({"times": options.repeats, "noise_std": options.noise_std, "seed": options.seed}
              if options.repeats > 1 else None)
    return Prepared(arrays, "image", CLASS_NAMES[name], normalisation(arrays["pool_x"]), repeat)
