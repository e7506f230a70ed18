"""Stochastic (power) BALD (Kirsch et al. 2023): sample without replacement with p ∝ BALD^beta.

beta -> infinity approaches top-k BALD; beta = 0 is uniform random. Scores are BALD's.
"""

from __future__ import annotations

import torch

from bal.information import mutual_information
from bal.strategies import BetaOptions, CandidateBatch, Strategy, sample_power


def select(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    return sample_power(mutual_information(log_probs_N_K_C), beta, batch_size, generator)


STRATEGY = Strategy("#44AA99", "h", selector=select, needs_samples=True, options=BetaOptions)
