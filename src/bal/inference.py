"""Monte-Carlo dropout prediction and evaluation."""

from __future__ import annotations

import math

import torch

from bal.models import McDropoutNet


@torch.inference_mode()
def predict_log_probs(
    model: McDropoutNet,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    batch_size: int = 250,
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``log_probs_N_K_C`` (natural log, float32, on the CPU) under K consistent dropout masks.

    The masks are drawn once per call (or passed in) and shared by every input; the trunk
    runs once per input, the head once per chunk for all K masks together
    (:meth:`McDropoutHead.sampler`).
    """
    model.eval()
    device = next(model.parameters()).device
    sample = model.head.sampler(masks if masks is not None else model.head.draw_masks(k, generator))
    chunks = []
    for start in range(0, x.shape[0], batch_size):
        features_N_D = model.trunk(x[start : start + batch_size].to(device))
        chunks.append(torch.log_softmax(sample(features_N_D), dim=-1).cpu())
    return torch.cat(chunks)


@torch.inference_mode()
def predict_log_probs_naive(
    model: McDropoutNet, x: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor], batch_size: int = 250
) -> torch.Tensor:
    """The straightforward path: K full forward passes, one per mask. For tests and benchmarks."""
    model.eval()
    device = next(model.parameters()).device
    head = model.head
    per_sample = []
    for mask_in_D, mask_hidden_H in zip(*masks):
        chunks = []
        for start in range(0, x.shape[0], batch_size):
            features_N_D = model.trunk(x[start : start + batch_size].to(device))
            hidden_N_H = torch.relu(head.fc1(features_N_D * mask_in_D))
            chunks.append(torch.log_softmax(head.fc2(hidden_N_H * mask_hidden_H), dim=-1).cpu())
        per_sample.append(torch.cat(chunks))
    return torch.stack(per_sample, dim=1)


def mean_log_probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Log of the predictive distribution, log mean_k p_k, as ``log_probs_N_C``."""
    return torch.logsumexp(log_probs_N_K_C, dim=1) - math.log(log_probs_N_K_C.shape[1])


@torch.inference_mode()
def predict_dropout_off(model: McDropoutNet, x: torch.Tensor, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """The deterministic prediction (dropout off, as Gal et al.'s Keras code predicted the test set)
    and the last hidden layer it comes from: ``(log_probs_N_C, features_N_H)``, float32 on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    log_probs, features = [], []
    for start in range(0, x.shape[0], batch_size):
        features_X_H = torch.relu(model.head.fc1(model.trunk(x[start : start + batch_size].to(device))))
        log_probs.append(torch.log_softmax(model.head.fc2(features_X_H), dim=-1).cpu())
        features.append(features_X_H.cpu())
    return torch.cat(log_probs), torch.cat(features)


def evaluate(
    model: McDropoutNet, x: torch.Tensor, y_N: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[float, float, float]:
    """Accuracy and mean negative log-likelihood (nats) of the MC-averaged prediction, and the
    accuracy of the deterministic one (dropout off)."""
    log_probs_N_C = mean_log_probs(predict_log_probs(model, x, k, generator))
    accuracy = (log_probs_N_C.argmax(dim=1) == y_N).double().mean().item()
    nll = torch.nn.functional.nll_loss(log_probs_N_C.double(), y_N).item()
    accuracy_dropout_off = (predict_dropout_off(model, x)[0].argmax(dim=1) == y_N).double().mean().item()
    return accuracy, nll, accuracy_dropout_off
