"""EPIG scoring and BADGE selection: seconds and extra peak memory on synthetic MC-dropout predictions.

    python benchmarks/epig_badge.py                      # N = 2,000 and 60,000; K = 100, M = 100, C = 10, H = 128
    python benchmarks/epig_badge.py --n 2000 --repeats 7

Targets: EPIG for 2,000 candidates and 100 targets at K = 100 within 1 s on one core; BADGE's
selection of 10 from 2,000 within 0.5 s. Each case runs in a fresh process, so its peak is its own:
the growth of the maximum resident set size during the call, on top of its inputs. Seconds are the
median of ``--repeats`` calls.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import typer


def one_case(what: str, n: int, repeats: int) -> dict:
    torch.set_num_threads(1)
    from bal.strategies import PoolInputs, select
    from bal.strategies.epig import score as epig_scores

    g = torch.Generator().manual_seed(0)

    def log_probs(*shape):  # filled a chunk at a time: no temporary larger than the inputs raises the peak first
        out = torch.empty(shape)
        for start in range(0, shape[0], 1000):
            out[start : start + 1000] = torch.log_softmax(3 * torch.randn(min(1000, shape[0] - start), *shape[1:], generator=g), -1)
        return out

    if what == "epig":
        log_probs_N_K_C, targets_M_K_C = log_probs(n, 100, 10), log_probs(100, 100, 10)

        def call():
            epig_scores(log_probs_N_K_C, targets_M_K_C)
    else:
        pool = PoolInputs(n, dropout_off_probs_N_C=log_probs(n, 10).exp(), features_N_H=torch.randn(n, 128, generator=g).relu_())

        def call():
            select("badge", pool, 10, generator=torch.Generator().manual_seed(1))

    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - tic)
    extra_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    return {"seconds": statistics.median(seconds), "extra_mib": extra_mib}


def main(n: str = typer.Option("2000,60000"), repeats: int = typer.Option(5), one: str = typer.Option("", hidden=True)) -> None:
    if one:
        print(json.dumps(one_case(one, int(n), repeats)))
        return
    print(f"1 torch thread, one fresh process per case, median of {repeats} calls")
    print(f"{'case':<44} {'N':>7} {'seconds':>8} {'extra MiB':>10}")
    for what, text in (("epig", "EPIG scores, M = 100 targets, K = 100, C = 10"), ("badge", "BADGE, 10 picks, C = 10, H = 128")):
        for size in map(int, n.split(",")):
            out = subprocess.run([sys.executable, __file__, f"--n={size}", f"--repeats={repeats}", f"--one={what}"],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out)
            print(f"{text:<44} {size:>7} {r['seconds']:>8.3f} {r['extra_mib']:>10.0f}", flush=True)


if __name__ == "__main__":
    typer.run(main)
