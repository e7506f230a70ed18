"""Your images in torchvision's ImageFolder layout: ``path/<class>/*.png|jpg|...``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bal.errors import DataError, require
from bal.identity import content_ids, digest
from bal.prepared import Prepared, normalisation
from bal.sources import FileOptions, check_labels, class_order, existing
from bal.splits import split_by_identity

FILES = True


@dataclass(frozen=True)
class Options(FileOptions):
    channels: int = 1  # 1 (grey) or 3 (RGB)
    size: int | None = None  # resize every image to size x size; None: all must share one size

    def __post_init__(self):
        super().__post_init__()
        require(self.channels in (1, 3), "channels", self.channels, "must be 1 (grey) or 3 (RGB)")
        require(self.size is None or self.size >= 1, "size", self.size,
                "must be null (keep the images' size) or a number of pixels")


# torchvision's ImageFolder extensions, named here because importing torchvision costs a prepare stage
# 170 MB of its 2 GB budget (tests/test_sources.py checks that they agree)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _hidden(name: str) -> bool:
    """A name tools leave behind, never a class or an item: .ipynb_checkpoints, ._x.png, __MACOSX."""
    return name.startswith((".", "__"))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
                  and not any(_hidden(part) for part in p.relative_to(folder).parts))


def read_images(files: list[Path], channels: int, size: int | None, key: str,
                like: tuple[int, int] | None = None) -> np.ndarray:
    """The images as uint8 ``N x channels x H x W``, filled in place (no copy of the whole set): each
    resized to ``size`` x ``size``, or all of one size, that of ``like`` (height, width) where given."""
    from PIL import Image, UnidentifiedImageError

    def load(path: Path):
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                return image.resize((size, size), Image.Resampling.BILINEAR) if size else image.copy()
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DataError(f"{path} is not a readable image ({type(err).__name__}: {err}).") from None

    first = load(files[0])
    height, width = like or first.size[::-1]
    out = np.empty((len(files), channels, height, width), dtype=np.uint8)
    for i, path in enumerate(files):
        image = first if i == 0 else load(path)
        if image.size != (width, height):
            other = "the labelled images are" if like else f"{files[0]} is"
            raise DataError(f"{path} is {image.size[0]}x{image.size[1]}, but {other} {width}x{height}; "
                            f"set {key}.size to resize every image to one size.")
        pixels = np.asarray(image, dtype=np.uint8)
        out[i] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
    return out


def _class_names(root: Path, options: Options, key: str) -> list[str]:
    names = class_order(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("test", "unlabelled")
                        and not _hidden(p.name))
    if not names:
        raise DataError(f"{key}.path = {options.path!r} has no class subfolders (path/<class name>/<image>).")
    return names


def apply_labels(options: Options, key: str, labels: dict[str, str], suggested: dict[str, set[str]]) -> list[str]:
    """Label unlabelled items (``unlabelled/<file>``) by moving each into the folder of its class, at the
    same path under it; the items moved. ``suggested``: each item bal ever suggested, with the digests
    (bal.identity) of the file it saw. All or nothing: every label is checked before any file moves, and
    the moves made are undone if one fails. An item already in the folder of its label was labelled before,
    and stays (so applying twice changes nothing); a label that is not a class, an item bal never suggested,
    a file changed since, not there, or labelled otherwise is refused."""
    root = existing(options.path, key, folder=True)
    class_names = _class_names(root, options, key)
    moves = []
    for item, label in sorted(labels.items()):
        under = Path(item).relative_to("unlabelled") if Path(item).parts[:1] == ("unlabelled",) else None
        if under is None or item not in suggested:
            raise DataError(f"{key}: bal never suggested {item} (it is in no round of the suggestions' history); "
                            "nothing was applied.")
        if label not in class_names:
            raise DataError(f"{key}: {item} is labelled {label!r}, which is not a class folder of {root} "
                            f"({', '.join(class_names)}); nothing was applied.")
        source, target = root / item, root / label / under
        if not source.is_file() and target.is_file() and digest(target.read_bytes()) in suggested[item]:
            continue  # labelled so before
        if not source.is_file():
            elsewhere = [name for name in class_names if (root / name / under).is_file()]
            raise DataError(f"{key}: {item} is " + (f"labelled {elsewhere[0]!r} already ({root / elsewhere[0] / under}), "
                            "and bal never moves a label" if elsewhere else "not there any more")
                            + "; nothing was applied.")
        if digest(source.read_bytes()) not in suggested[item]:
            raise DataError(f"{key}: {source} is another image than bal suggested (its bytes differ); nothing was applied.")
        if target.exists():
            raise DataError(f"{key}: {target} exists already, so {item} cannot move there; nothing was applied.")
        moves.append((source, target))
    done, made = [], []
    try:
        for source, target in moves:
            made += reversed([p for p in (target.parent, *target.parent.parents) if not p.exists()])
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
            done.append((source, target))
    except BaseException as err:
        for moved_from, moved_to in reversed(done):
            moved_to.rename(moved_from)
        for folder in reversed(made):  # the folders this made, deepest first
            folder.rmdir()
        if isinstance(err, OSError):
            raise DataError(f"{key}: moving {source} to {target} failed ({err}); every move was undone.") from None
        raise
    return [str(source.relative_to(root)) for source, _ in moves]


def build(options: Options, key: str, context: dict) -> Prepared:
    """``path/<class>/*.png|jpg|...`` (torchvision's ImageFolder layout); ``path/test/<class>/`` is the
    test set where it exists; ``path/unlabelled/`` holds the items for the suggest stage."""
    root = existing(options.path, key, folder=True)
    class_names = _class_names(root, options, key)
    files, labels = [], []
    for i, name in enumerate(class_names):
        found = _image_files(root / name)
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"{key}.path = {options.path!r}: its class folders hold no images.")
    y = np.array(labels, dtype=np.int64)
    x = read_images(files, options.channels, options.size, key)
    test = None
    if (root / "test").is_dir():
        test_names = class_order(p.name for p in (root / "test").iterdir() if p.is_dir() and not _hidden(p.name))
        unknown = sorted(set(test_names) - set(class_names))
        if unknown:
            raise DataError(f"{key}: the test set has class {unknown[0]!r}, which the labelled items never have.")
        test_files, test_labels = [], []
        for name in test_names:
            found = _image_files(root / "test" / name)
            test_files += found
            test_labels += [class_names.index(name)] * len(found)
        if not test_files:
            raise DataError(f"{key}: {root / 'test'} holds no images.")
        test = (read_images(test_files, options.channels, options.size, key, x.shape[-2:]), np.array(test_labels))
    check_labels(key, y, test[1] if test else y, class_names, "the labelled images")
    record = context["record"]
    # equal images are told apart by their path below the class folder, which a label correction keeps
    order = sorted(range(len(files)), key=lambda i: (files[i].relative_to(root / class_names[labels[i]]), i))
    ids = dict(zip(order, content_ids(files[i].read_bytes() for i in order)))
    arrays, assigned = split_by_identity(x, y, [ids[i] for i in range(len(files))], record or None, key,
                                         options.n_validation, options.n_dev, options.seed, test, options.n_test)
    record.update(assigned)
    items = []
    unlabelled = _image_files(root / "unlabelled") if (root / "unlabelled").is_dir() else []
    if unlabelled:
        arrays["unlabelled_x"] = read_images(unlabelled, options.channels, options.size, key, x.shape[-2:])
        items = [str(p.relative_to(root)) for p in unlabelled]
    return Prepared(arrays, "image", class_names, normalisation(arrays["pool_x"]), unlabelled_items=items)
