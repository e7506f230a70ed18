"""Margin: minus the gap between the two most probable classes of the predictive distribution."""

from __future__ import annotations

import torch

from bal.information import mean_probs
from bal.strategies import Strategy


def score(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    top2_N_2 = mean_probs(log_probs_N_K_C).topk(2, dim=1).values
    return top2_N_2[:, 1] - top2_N_2[:, 0]


STRATEGY = Strategy("#56B4E9", "^", scorer=score)
