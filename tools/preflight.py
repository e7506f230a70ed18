"""Check params.yaml whole before DVC starts, and warn when this CPU would emulate bfloat16 training.

    python tools/preflight.py          # `make repro` runs it first

A bad entry anywhere (a strategy's options, a dataset's source, a suggest entry that dvc.yaml could
not even be parsed with) stops it with one sentence and exit code 2; the stages themselves check only
what they read. The bf16 warning never stops the run.

The MNIST-like datasets train with bfloat16 autocast (``learn.<dataset>.train.precision``), which is
fast on CPUs with AVX512-BF16 or AMX, where the committed grid ran. Other CPUs emulate it: on an AMD
EPYC with AVX2 only, 100 training steps on 100 MNIST images took 78.2 s in bfloat16 against 6.7 s in
float32 (``benchmarks/training.py``, one thread). There, set the precision to float32 for a run of
your own: it is fast, but it changes the rounding, so its results are statistically equivalent to
the committed ones, not equal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from bal.config import Params, check_all, load_params
from bal.errors import ConfigError


def emulated_bf16(params: Params, native_bf16: bool) -> list[str]:
    """The datasets of every grid that would train in emulated bfloat16."""
    if native_bf16 or params.compute.device != "cpu":
        return []
    datasets = {d for grid in params.every_grid().values() for d in grid.datasets}
    return sorted(d for d in datasets if params.learn[d].train.precision == "bfloat16")


def main() -> None:
    try:
        params = load_params(Path("params.yaml"))
        check_all(params)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    slow = emulated_bf16(params, native)
    if slow:
        print(f"warning: this CPU has neither AVX512-BF16 nor AMX, so the bfloat16 training of {', '.join(slow)} "
              f"is emulated, about 12 times slower than on the CPUs of the committed grid; for a fast run whose results "
              f"are statistically equivalent to the committed ones, not equal, set learn.<dataset>.train.precision "
              f"to float32.", file=sys.stderr)


if __name__ == "__main__":
    main()
