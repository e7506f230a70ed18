"""Information quantities of MC-dropout predictions, shared by the strategies.

``log_probs_N_K_C``: natural-log class probabilities of N inputs under K consistent dropout
masks. Sums of entropies are taken in float64; the mean predictive is log-space
(logsumexp over K minus log K).
"""

from __future__ import annotations

import math

import torch

CHUNK_ELEMENTS = 2**23  # float64 elements (64 MiB) of one chunk of a large intermediate table


def check_log_probs(log_probs_N_K_C: torch.Tensor) -> None:
    """Refuse a tensor that is not N x K x C or holds NaN or +inf."""
    if log_probs_N_K_C.ndim != 3:
        raise ValueError(f"log_probs must have shape N x K x C, got {tuple(log_probs_N_K_C.shape)}.")
    if torch.isnan(log_probs_N_K_C).any() or (log_probs_N_K_C == math.inf).any():
        raise ValueError("log_probs contain NaN or +inf: the model's predictions are broken.")


def mean_log_probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Log of the predictive distribution, log mean_k p_k, as ``log_probs_N_C`` in the input's dtype."""
    return torch.logsumexp(log_probs_N_K_C, dim=1) - math.log(log_probs_N_K_C.shape[1])


def probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Per-sample class probabilities in float64."""
    return log_probs_N_K_C.double().exp()


def mean_probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """The predictive distribution p(y|x) = mean over the K samples, in float64."""
    return mean_log_probs(log_probs_N_K_C.double()).exp()


def entropy(probs_X_C: torch.Tensor) -> torch.Tensor:
    """Entropy in nats along the last dimension; 0 log 0 = 0."""
    return torch.special.entr(probs_X_C).sum(dim=-1)


def predictive_entropy(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Entropy of the predictive distribution, H[y|x] (nats, float64)."""
    return entropy(mean_probs(log_probs_N_K_C))


def expected_entropy(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Mean over the K samples of each sample's predictive entropy, E_w H[y|x,w] (nats, float64)."""
    return entropy(probs(log_probs_N_K_C)).mean(dim=1)


def mutual_information(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """I[y; w | x] = H[mean prediction] - mean of the samples' entropies (nats, float64).

    Clamped at 0: the true value is never negative, and float rounding must not make it so.
    """
    return (predictive_entropy(log_probs_N_K_C) - expected_entropy(log_probs_N_K_C)).clamp_min(0.0)
