"""What every stage script shares: params loading, torch settings and the environment they give,
and clean failure."""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

import torch
import typer

from bal.config import Params, load_params
from bal.errors import ConfigError, DataError


def fails_cleanly(main):
    """Turn a user-caused error (a bad param, a missing or corrupt data file) into one sentence on
    stderr and exit code 2. Anything else is a bug and keeps its traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (ConfigError, DataError) as err:
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
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"compute.device = {device!r} but CUDA is not available here; use cpu.")
    return params, torch.device(device)


def _cpuinfo(field: str) -> str:
    """The first ``field`` line of /proc/cpuinfo (Linux), or ''."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def vector_extensions() -> list[str]:
    """The CPU's vector and matrix extensions, which choose the kernels (and so the rounding) of matmuls
    and convolutions; a virtual machine's model name often hides them ("Intel(R) Xeon(R) Processor")."""
    return sorted(f for f in _cpuinfo("flags").split() if f.startswith(("avx", "amx", "fma")))


def environment(device: torch.device) -> dict:
    """What besides params, code and data decides a run's float rounding, recorded beside its curve.
    Reruns are bit-identical only where all of it matches."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_extensions": vector_extensions(),
    }
