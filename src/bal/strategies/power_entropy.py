"""Power entropy (Kirsch et al. 2023): sample without replacement with p ∝ H[y|x]^beta.

Needs no MC samples (K = 1 works). Scores are the predictive entropies.
"""

from __future__ import annotations

import torch

from bal.information import predictive_entropy
from bal.strategies import BetaOptions, CandidateBatch, Strategy, sample_power


def select(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    return sample_power(predictive_entropy(log_probs_N_K_C), beta, batch_size, generator)


STRATEGY = Strategy("#F0E442", "<", selector=select, options=BetaOptions)
