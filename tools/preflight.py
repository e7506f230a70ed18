"""Check params.yaml whole before DVC starts, and warn when this CPU would emulate bfloat16 training.

    python tools/preflight.py          # `make repro` runs it first

A bad entry anywhere (a strategy's options, a dataset's source, a suggest entry that dvc.yaml could
not even be parsed with) stops it with one sentence and exit code 2; the stages themselves check only
what they read. The bf16 warning never stops the run.

The MNIST-like datasets train with bfloat16 autocast (``learn.<dataset>.train.precision``), which is
fast on CPUs with AVX512-BF16 or AMX, where the committed grid ran. Other CPUs emulate it: on an AMD
EPYC with AVX2 only, 100 training steps on 100 MNIST images took 78.2 s in bfloat16 against 6.7 s in
float32 (``benchmarks/training.py``, one thread). There, float32 makes a run of your own fast, but it
is another protocol, not the committed one: on the dev split it was behind bf16 for BALD on both
seeds (AUC −1.71 / −0.70 points) and level for random (docs/protocol.md), so its results cannot be
pooled with the grid's.
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
              "is emulated, about 12 times slower than float32 here; setting learn.<dataset>.train.precision to "
              "float32 is fast, but it is another protocol, behind bf16 for BALD on the dev split (docs/protocol.md), "
              "so its results cannot be pooled with the committed grid's.",
              file=sys.stderr)


if __name__ == "__main__":
    main()
