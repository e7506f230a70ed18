"""Variation ratios (Freeman 1965): one minus the fraction of the K samples that vote for the modal class."""

from __future__ import annotations

import torch

from bal.strategies import Strategy


def score(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    n, k, c = log_probs_N_K_C.shape
    votes_N_K = log_probs_N_K_C.argmax(dim=2)
    counts_N_C = torch.zeros(n, c, dtype=torch.float64, device=votes_N_K.device)
    counts_N_C.scatter_add_(1, votes_N_K, torch.ones(n, k, dtype=torch.float64, device=votes_N_K.device))
    return 1.0 - counts_N_C.max(dim=1).values / k


STRATEGY = Strategy("#0072B2", "v", scorer=score, needs_samples=True)
