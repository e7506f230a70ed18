"""MC-dropout networks split into a deterministic trunk and a stochastic head.

All dropout sits in the head, so Monte-Carlo prediction runs the (expensive) trunk once
per input and only the head K times. ``McDropoutHead.sampler`` applies *consistent*
dropout: one mask per sample index k, shared by every input of the call, which is what
BALD-type estimates over a pool need (Gal et al. 2017; Kirsch et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class McDropoutHead(nn.Module):
    """dropout(p_in) -> dense(hidden) -> relu -> dropout(p_hidden) -> dense(classes)."""

    def __init__(self, in_features: int, hidden: int, classes: int, p_in: float, p_hidden: float):
        super().__init__()
        self.p_in, self.p_hidden = p_in, p_hidden
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, features_N_D: torch.Tensor) -> torch.Tensor:
        """Training/deterministic pass (dropout follows ``self.training``); returns logits."""
        x = nn.functional.dropout(features_N_D, self.p_in, self.training)
        x = torch.relu(self.fc1(x))
        x = nn.functional.dropout(x, self.p_hidden, self.training)
        return self.fc2(x)

    def draw_masks(self, k: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """K inverted-dropout masks for each dropout layer: (mask_in_K_D, mask_hidden_K_H)."""
        device = self.fc1.weight.device
        d, h = self.fc1.in_features, self.fc1.out_features
        mask_in_K_D = _mask(k, d, self.p_in, generator).to(device)
        mask_hidden_K_H = _mask(k, h, self.p_hidden, generator).to(device)
        return mask_in_K_D, mask_hidden_K_H

    def sampler(self, masks: tuple[torch.Tensor, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """A function from ``features_N_D`` to the logits under each of the K masks, ``logits_N_K_C``.

        With inverted dropout, fc1 of the masked input is (x W - x_dropped W) / (1 - p_in) + b:
        x W is computed once per input, and only the ~p_in D dropped inputs of each mask go
        through a per-mask product, all K at once in one batched matmul. The dropped rows of the
        weight are gathered here, once per set of masks, for every chunk of inputs that follows.
        """
        mask_in_K_D, mask_hidden_K_H = masks
        dropped_K_D = mask_in_K_D == 0
        width = int(dropped_K_D.sum(1).max())
        # per mask, the indices of its dropped inputs first; the padding after them gets a zero weight
        index_K_Dd = torch.sort(dropped_K_D.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :width]
        is_dropped_K_Dd = torch.gather(dropped_K_D, 1, index_K_Dd)
        weight_K_H_Dd = (self.fc1.weight.T[index_K_Dd] * is_dropped_K_Dd[..., None]).transpose(1, 2).contiguous()
        scale = 1.0 / (1.0 - self.p_in)

        def sample(features_N_D: torch.Tensor) -> torch.Tensor:
            full_H_N = self.fc1.weight @ features_N_D.T
            dropped_K_H_N = torch.bmm(weight_K_H_Dd, features_N_D.T.contiguous()[index_K_Dd])
            hidden_N_K_H = torch.relu((full_H_N - dropped_K_H_N).permute(2, 0, 1) * scale + self.fc1.bias)
            return self.fc2(hidden_N_K_H * mask_hidden_K_H)

        return sample


def _mask(k: int, width: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    keep_K_W = torch.rand(k, width, generator=generator) >= p
    return keep_K_W.float() / (1.0 - p)


class ChannelsLast(nn.Module):
    """Reorders image batches to channels-last, which made the CNN's convolutions ~2x faster on CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)


class McDropoutNet(nn.Module):
    """A deterministic ``trunk`` followed by an :class:`McDropoutHead`."""

    def __init__(self, trunk: nn.Module, head: McDropoutHead):
        super().__init__()
        self.trunk, self.head = trunk, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


@torch.no_grad()
def keras_init(model: nn.Module) -> nn.Module:
    """Keras' defaults, as in Gal et al.'s code: Glorot-uniform weights and zero biases for every
    dense and convolutional layer (PyTorch's default is Kaiming-uniform with uniform biases)."""
    for layer in model.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


INITS = {"torch": lambda model: model, "keras": keras_init}


def cnn(input_shape: tuple[int, ...], classes: int, hidden: int = 128, p_in: float = 0.25, p_hidden: float = 0.5) -> McDropoutNet:
    """The MNIST CNN of Gal, Islam & Ghahramani 2017, for any channel count and image size of at least
    16 x 16 (the flatten size is computed): conv 32 4x4 - relu - conv 32 4x4 - relu - maxpool 2 -
    dropout ``p_in`` - dense ``hidden`` - relu - dropout ``p_hidden`` - dense ``classes``."""
    channels, height, width = input_shape
    if min(height, width) < MIN_IMAGE_SIZE:
        raise ValueError(f"the CNN needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}, got {width}x{height}.")
    trunk = nn.Sequential(
        ChannelsLast(),
        nn.Conv2d(channels, 32, 4), nn.ReLU(),
        nn.Conv2d(32, 32, 4), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
    )
    flat = 32 * ((height - 6) // 2) * ((width - 6) // 2)
    net = McDropoutNet(trunk, McDropoutHead(flat, hidden, classes, p_in, p_hidden))
    return net.to(memory_format=torch.channels_last)


def mlp(input_shape: tuple[int, ...], classes: int, hidden: int = 128, p_in: float = 0.25, p_hidden: float = 0.5) -> McDropoutNet:
    """For tables (N x D): dense ``hidden`` - relu - [dropout ``p_in`` - dense ``hidden`` - relu -
    dropout ``p_hidden`` - dense ``classes``]."""
    (features,) = input_shape
    trunk = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
    return McDropoutNet(trunk, McDropoutHead(hidden, hidden, classes, p_in, p_hidden))


MIN_IMAGE_SIZE = 16
MODELS = {"cnn": cnn, "mlp": mlp}  # model: auto picks cnn for images, mlp for tables
