"""Mean STD: the standard deviation of each class probability over the K samples, averaged over classes."""

from __future__ import annotations

import torch

from bal.information import probs
from bal.strategies import Strategy


def score(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    return probs(log_probs_N_K_C).std(dim=1, correction=0).mean(dim=1)


STRATEGY = Strategy("#D55E00", "P", scorer=score, needs_samples=True)
