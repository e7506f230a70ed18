"""TwoMoons: two interleaving half circles with Gaussian noise, in the plane (a table of 2 features)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from bal.errors import require
from bal.prepared import Prepared
from bal.sources import check_counts
from bal.splits import random_parts


@dataclass(frozen=True)
class Options:
    n_pool: int = 1000
    n_validation: int = 100
    n_test: int = 2000
    noise: float = 0.12
    seed: int = 0

    def __post_init__(self):
        check_counts(self)
        require(self.noise >= 0, "noise", self.noise, "must be non-negative")


def two_moons(n: int, noise: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of two interleaving half circles with Gaussian noise: (x_N_2, y_N)."""
    y_N = torch.arange(n) % 2
    t_N = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    upper_N_2 = torch.stack([torch.cos(t_N), torch.sin(t_N)], dim=1)
    lower_N_2 = torch.stack([1.0 - torch.cos(t_N), 0.5 - torch.sin(t_N)], dim=1)
    x_N_2 = torch.where(y_N[:, None] == 0, upper_N_2, lower_N_2)
    x_N_2 = x_N_2 + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x_N_2.float(), y_N


def prepare_two_moons(n_pool: int, n_validation: int, n_test: int, noise: float, seed: int) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    x, y = two_moons(n_pool + n_validation + n_test, noise, generator)
    arrays = {}
    for name, idx in random_parts(len(y), {"pool": n_pool, "val": n_validation, "test": n_test}, generator).items():
        arrays[f"{name}_x"], arrays[f"{name}_y"] = x[idx].numpy(), y[idx].numpy()
    return arrays


def build(options: Options, key: str, context: dict) -> Prepared:
    arrays = prepare_two_moons(options.n_pool, options.n_validation, options.n_test, options.noise, options.seed)
    return Prepared(arrays, "table", ["0", "1"])  # the raw plane: the decision maps draw in its coordinates
