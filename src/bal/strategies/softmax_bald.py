"""Softmax BALD (Kirsch et al. 2023): sample without replacement with p ∝ exp(beta * BALD).

Flatter than power BALD for small scores (a point with BALD 0 keeps weight 1). Scores are BALD's.
"""

from __future__ import annotations

import torch

from bal.information import mutual_information
from bal.strategies import BetaOptions, CandidateBatch, Strategy, sample_proportional


def select(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    BetaOptions(beta)  # refuses a negative or infinite beta
    bald_N = mutual_information(log_probs_N_K_C)
    return sample_proportional(beta * bald_N, bald_N, batch_size, generator)


STRATEGY = Strategy("#DDCC77", "p", selector=select, needs_samples=True, options=BetaOptions)
