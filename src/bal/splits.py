"""Split policy: a test set (given, or held out class by class), validation, dev and pool.

Every draw comes from one generator seeded by the dataset's ``seed``, so the same options give
the same positions.
"""

from __future__ import annotations

import numpy as np
import torch

from bal.errors import DataError


def random_parts(n: int, sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` positions in one seeded random order, cut into consecutive parts of the given sizes (in order)."""
    return dict(zip(sizes, torch.split(torch.randperm(n, generator=generator), list(sizes.values()))))


def stratified_holdout(
    y_N: np.ndarray, n: int, generator: torch.Generator, mix_y: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` indices drawn at random class by class, in proportion to the classes of ``mix_y``
    (default ``y_N`` itself; largest remainders get the rounding), and the rest: ``(held_out, rest)``,
    each sorted."""
    classes, counts = np.unique(y_N if mix_y is None else mix_y, return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    held = []
    for c, q in zip(classes, quota):
        of_class = np.flatnonzero(y_N == c)
        if len(of_class) < q:
            raise DataError(f"class {c} has {len(of_class)} items to draw from, fewer than its share {q} of {n}.")
        held.append(of_class[torch.randperm(len(of_class), generator=generator)[:q].numpy()])
    held_out = np.sort(np.concatenate(held))
    return held_out, np.setdiff1d(np.arange(len(y_N)), held_out)


def split_indices(n: int, n_validation: int, n_dev: int, generator: torch.Generator) -> dict[str, np.ndarray]:
    """Pool, validation and dev positions out of ``n``: one seeded permutation, validation its first
    ``n_validation`` and dev its last ``n_dev``, so that growing one leaves the other unchanged."""
    perm = torch.randperm(n, generator=generator).numpy()
    parts = {"val": perm[:n_validation], "pool": perm[n_validation : n - n_dev], "dev": perm[n - n_dev :]}
    return {name: np.sort(idx) for name, idx in parts.items() if len(idx) or name != "dev"}


def split_arrays(
    x: np.ndarray, y_N: np.ndarray, key: str, n_validation: int, n_dev: int, seed: int,
    test: tuple[np.ndarray, np.ndarray] | None = None, n_test: int = 0,
    rare_classes: list[int] | None = None, rare_keep: float = 1.0, n_target: int = 0,
) -> dict:
    """The split arrays (as ``(x, indices)`` where they are taken from ``x``): a given test set, or
    a class-stratified ``n_test`` held out first; then validation, dev and pool. The pool alone
    keeps only a random ``rare_keep`` of each class in ``rare_classes``.

    ``n_target`` > 0 draws a target set (EPIG's target inputs, ``target_x`` without labels) of that
    many dev items with the test set's class mix, which leave dev. It is drawn last and from dev, so
    that the pool, validation and test are the ones the same options give without it."""
    generator = torch.Generator().manual_seed(seed)
    arrays = {}
    rest = np.arange(len(y_N))
    if test is None:
        if n_test >= len(y_N):
            raise DataError(f"{key}.n_test = {n_test}: the source holds only {len(y_N)} labelled items.")
        held_out, rest = stratified_holdout(y_N, n_test, generator)
        arrays["test_x"], arrays["test_y"] = (x, held_out), y_N[held_out]
    else:
        arrays["test_x"], arrays["test_y"] = test
    if n_validation + n_dev >= len(rest):
        raise DataError(f"{key}: n_validation ({n_validation}) and n_dev ({n_dev}) leave no pool of the "
                        f"{len(rest)} labelled items that are not test items.")
    for name, idx in split_indices(len(rest), n_validation, n_dev, generator).items():
        arrays[f"{name}_x"], arrays[f"{name}_y"] = (x, rest[idx]), y_N[rest[idx]]
    if rare_classes:
        pool = arrays["pool_x"][1]
        kept = [pool[y_N[pool] == c] for c in np.unique(y_N) if c not in rare_classes]
        for c in rare_classes:
            of_class = pool[y_N[pool] == c]
            kept.append(of_class[torch.randperm(len(of_class), generator=generator)[: round(rare_keep * len(of_class))].numpy()])
        pool = np.sort(np.concatenate(kept))
        arrays["pool_x"], arrays["pool_y"] = (x, pool), y_N[pool]
    if n_target:
        dev = arrays["dev_x"][1]
        try:
            target, kept = stratified_holdout(y_N[dev], n_target, generator, mix_y=arrays["test_y"])
        except DataError as err:
            raise DataError(f"{key}.n_target = {n_target}: the dev split of {len(dev)} cannot supply the test set's "
                            f"class mix: {err}") from None
        arrays["target_x"] = (x, dev[target])
        arrays["dev_x"], arrays["dev_y"] = (x, dev[kept]), y_N[dev[kept]]
    return arrays


def split_by_identity(
    x: np.ndarray, y_N: np.ndarray, ids: list[str], record: dict[str, str] | None, key: str, n_validation: int,
    n_dev: int, seed: int, test: tuple[np.ndarray, np.ndarray] | None = None, n_test: int = 0,
) -> tuple[dict, dict[str, str]]:
    """The split arrays of your own data, keyed by each item's identity (``ids``, one per row of ``x``), and
    the record of the assignment (item -> split) to keep with the data.

    Without a record (the first prepare) the items are split as :func:`split_arrays` splits them. With one,
    every recorded item keeps its split, and every item the record does not hold (labelled since, for one
    picked by a strategy) joins the pool, never test, validation or dev: so the test set never moves and
    never takes in the items a strategy chose. The record keeps every item it ever held.
    """
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{key}: two labelled items are both named {twice!r}; each needs its own identity.")
    if record is None:
        arrays = split_arrays(x, y_N, key, n_validation, n_dev, seed, test, n_test)
        where = {ids[i]: name for name in ("pool", "val", "dev", "test") if isinstance(arrays.get(f"{name}_x"), tuple)
                 for i in arrays[f"{name}_x"][1]}
        return arrays, where
    where_N = np.array([record.get(i, "pool") for i in ids])
    kept = {name for name in where_N[np.isin(ids, list(record))]}
    missing = [name for name in ("val", "test") if name not in kept and not (name == "test" and test is not None)]
    if missing:
        raise DataError(f"{key}: no item of the recorded {missing[0]} split is an item now (another path, renamed "
                        "files?); delete the split record (data/splits/) to split afresh.")
    arrays = {}
    for name in ("pool", "val", "dev") if test is not None else ("pool", "val", "dev", "test"):
        idx = np.flatnonzero(where_N == name)
        if len(idx) or name != "dev":
            arrays[f"{name}_x"], arrays[f"{name}_y"] = (x, idx), y_N[idx]
    if test is not None:
        arrays["test_x"], arrays["test_y"] = test
    return arrays, {**record, **dict(zip(ids, where_N.tolist()))}
