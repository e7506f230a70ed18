"""Power entropy (Kirsch et al. 2023): sample without replacement with p ∝ H[y|x]^beta.

Needs no MC samples (K = 1 works). Scores are the predictive entropies.
"""

from __future__ import annotations

import torch

from bal.information import predictive_entropy
from bal.strategies import BetaOptions, CandidateBatch, Strategy, sample_proportional


def select(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    BetaOptions(beta)  # refuses a negative or infinite beta
    entropy_N = predictive_entropy(log_probs_N_K_C)
    return sample_proportional(beta * torch.log(entropy_N.clamp_min(1e-300)), entropy_N, batch_size, generator)


STRATEGY = Strategy("#F0E442", "<", selector=select, options=BetaOptions)
