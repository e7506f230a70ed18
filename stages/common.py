"""What every stage script shares: params loading, torch settings, and clean failure."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import torch
import typer

from bal.config import ConfigError, Params, load_params
from bal.data import DataError


def fails_cleanly(main):
    """Turn a user-caused error into one sentence on stderr and exit code 2, no traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (ConfigError, DataError, ValueError) as err:
            typer.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


def params_and_torch(params_path: Path) -> tuple[Params, torch.device]:
    """Load params.yaml and apply its compute settings: thread count, determinism, device."""
    params = load_params(params_path)
    torch.set_num_threads(params.compute.threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed for deterministic CUDA matmuls
    torch.use_deterministic_algorithms(True)
    device = params.compute.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"compute.device = {device!r} but CUDA is not available here; use auto or cpu.")
    return params, torch.device(device)
