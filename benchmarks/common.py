"""What the MNIST benchmarks share: params, torch settings as in a learn stage, the prepared split."""

from __future__ import annotations

from pathlib import Path

import torch

from bal.config import Learn, load_params
from bal.prepared import Split, load_prepared


def mnist_setup(params_path: Path, prepared: Path) -> tuple[Learn, Split]:
    """``learn.mnist`` and the prepared MNIST split, with the stages' thread count and determinism."""
    params = load_params(params_path)
    torch.set_num_threads(params.compute.threads)
    torch.use_deterministic_algorithms(True)
    return params.learn["mnist"], load_prepared(prepared)
