"""Monte-Carlo dropout prediction and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bal.information import mean_log_probs
from bal.models import McDropoutNet


@dataclass(frozen=True)
class Prediction:
    """What one pass over the inputs gives, float32 on the CPU; a field not asked for is None."""

    log_probs_N_K_C: torch.Tensor | None  # natural log, under K consistent dropout masks
    dropout_off_log_probs_N_C: torch.Tensor | None  # the deterministic prediction
    features_N_H: torch.Tensor | None  # the last hidden layer of the deterministic prediction


@torch.inference_mode()
def predict(
    model: McDropoutNet,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    dropout_off: bool = False,
    batch_size: int = 250,
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Prediction:
    """The MC-dropout prediction under K consistent masks (none for k = 0) and, with ``dropout_off``,
    the deterministic one (as Gal et al.'s Keras code predicted the test set), from one trunk pass.

    The masks are drawn once per call (or passed in) and shared by every input; the trunk
    runs once per input, the head once per chunk for all K masks together
    (:meth:`McDropoutHead.sampler`).
    """
    model.eval()
    device = next(model.parameters()).device
    head = model.head
    sample = head.sampler(masks if masks is not None else head.draw_masks(k, generator)) if k else None
    mc, off, hidden = [], [], []
    for start in range(0, x.shape[0], batch_size):
        features_B_D = model.trunk(x[start : start + batch_size].to(device))
        if sample is not None:
            mc.append(torch.log_softmax(sample(features_B_D), dim=-1).cpu())
        if dropout_off:
            hidden_B_H = torch.relu(head.fc1(features_B_D))
            off.append(torch.log_softmax(head.fc2(hidden_B_H), dim=-1).cpu())
            hidden.append(hidden_B_H.cpu())
    return Prediction(*(torch.cat(parts) if parts else None for parts in (mc, off, hidden)))


def predict_log_probs(
    model: McDropoutNet,
    x: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    batch_size: int = 250,
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``log_probs_N_K_C`` (natural log, float32, on the CPU) under K consistent dropout masks."""
    return predict(model, x, k, generator, batch_size=batch_size, masks=masks).log_probs_N_K_C


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


def evaluate(
    model: McDropoutNet, x: torch.Tensor, y_N: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[float, float, float]:
    """Accuracy and mean negative log-likelihood (nats) of the MC-averaged prediction, and the
    accuracy of the deterministic one (dropout off)."""
    prediction = predict(model, x, k, generator, dropout_off=True)
    log_probs_N_C = mean_log_probs(prediction.log_probs_N_K_C)
    accuracy = (log_probs_N_C.argmax(dim=1) == y_N).double().mean().item()
    nll = torch.nn.functional.nll_loss(log_probs_N_C.double(), y_N).item()
    accuracy_dropout_off = (prediction.dropout_off_log_probs_N_C.argmax(dim=1) == y_N).double().mean().item()
    return accuracy, nll, accuracy_dropout_off
