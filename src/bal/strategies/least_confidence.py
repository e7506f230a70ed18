"""Least confidence: one minus the probability of the most probable class."""

from __future__ import annotations

import torch

from bal.information import mean_probs
from bal.strategies import Strategy


def score(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    return 1.0 - mean_probs(log_probs_N_K_C).max(dim=1).values


STRATEGY = Strategy("#009E73", "D", scorer=score)
