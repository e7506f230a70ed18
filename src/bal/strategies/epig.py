"""EPIG (Bickford Smith et al. 2023): the expected predictive information gain about target inputs.

For each candidate x, the mean over M target inputs x* of I(y; y* | x, x*). The loop draws the
``targets`` inputs at random from the unlabelled pool each round (the paper's pool-based setting)
and predicts them with the candidates' K masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bal.errors import ConfigError, require
from bal.information import CHUNK_ELEMENTS, predictive_entropy
from bal.strategies import Run, Strategy


@dataclass(frozen=True)
class Options:
    targets: int = 100  # target inputs drawn from the unlabelled pool each round (the EPIG paper's pool setting)

    def __post_init__(self):
        require(self.targets >= 1, "targets", self.targets, "must be at least 1")


def score(log_probs_N_K_C: torch.Tensor, target_log_probs_M_K_C: torch.Tensor,
          chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """EPIG in nats, float64.

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


def check_run(options: Options, run: Run) -> None:
    """The targets are drawn from the unlabelled pool, which must still hold them at the budget."""
    most = run.pool - run.budget
    if options.targets > most:
        raise ConfigError(f"options.epig.targets = {options.targets}: must be at most the {most} points the "
                          f"{run.dataset} pool still holds at the budget ({run.budget_key}).")


STRATEGY = Strategy("#332288", ">", scorer=score, inputs=("log_probs_N_K_C", "target_log_probs_M_K_C"),
                    needs_samples=True, options=Options, input_options=("targets",), check_run=check_run)
