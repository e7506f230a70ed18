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


def epig(log_probs_N_K_C: torch.Tensor, target_log_probs_M_K_C: torch.Tensor,
         chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """EPIG (Bickford Smith et al. 2023) in nats, float64: for each candidate x, the mean over M target
    inputs x* of I(y; y* | x, x*).

    Both tensors come from the same K consistent MC samples, which make the joint predictive
    p(y, y*) = (1/K) sum_k p(y | x, w_k) p(y* | x*, w_k) one matrix product over K; then
    I = H[p(y)] + H[p(y*)] - H[p(y, y*)]. Candidates go in chunks, so extra memory stays at
    ``chunk_elements`` float64 numbers whatever N.
    """
    n, k, c = log_probs_N_K_C.shape
    m, k_targets, c_targets = target_log_probs_M_K_C.shape
    if m == 0:
        raise ValueError("epig needs at least one target input, got 0.")
    if k_targets != k:
        raise ValueError(f"epig needs the targets predicted with the candidates' K = {k} masks, got K = {k_targets}.")
    probs_K_MC = target_log_probs_M_K_C.double().exp().permute(1, 0, 2).reshape(k, m * c_targets) / k
    target_entropy = predictive_entropy(target_log_probs_M_K_C).mean()
    chunk = max(1, chunk_elements // (c * m * c_targets))
    scores_N = torch.empty(n, dtype=torch.float64, device=log_probs_N_K_C.device)
    for start in range(0, n, chunk):
        log_probs_X_K_C = log_probs_N_K_C[start : start + chunk]
        probs_XC_K = log_probs_X_K_C.double().exp().transpose(1, 2).reshape(-1, k)
        joint_XC_MC = probs_XC_K @ probs_K_MC  # p(y, y*) for each candidate and target
        terms_X_C_M_C = torch.special.entr(joint_XC_MC, out=joint_XC_MC).view(-1, c, m, c_targets)
        joint_entropy_X = terms_X_C_M_C.sum(dim=(1, 3)).mean(dim=1)
        scores_N[start : start + chunk] = predictive_entropy(log_probs_X_K_C) + target_entropy - joint_entropy_X
    return scores_N.clamp_min(0.0)
