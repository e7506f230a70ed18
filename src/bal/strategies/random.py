"""Random: uniformly random points, the baseline every strategy is compared with."""

from __future__ import annotations

import torch

from bal.strategies import CandidateBatch, Strategy, top_k


def select(n: int, batch_size: int, generator: torch.Generator | None) -> CandidateBatch:
    """Uniformly random points of the ``n`` candidates, without replacement; the scores are the
    uniform draws. It needs no predictions."""
    draws_N = torch.rand(n, generator=generator, dtype=torch.float64)
    return top_k(draws_N, batch_size, None)


STRATEGY = Strategy("#000000", "o", selector=select, inputs=("size",))
