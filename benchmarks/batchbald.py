"""BatchBALD selection time and extra peak memory on synthetic consistent-MC predictions.

    python benchmarks/batchbald.py                          # the target case: N=10k, K=20, b=10, M=10k
    python benchmarks/batchbald.py --n 2000,10000,60000 --k 20,100 --b 4,10,40 --m 1000,10000

Each case runs in a fresh process, so the reported peak is that case's own: the growth of the
process's maximum resident set size during selection, on top of its inputs.
"""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import time

import torch
import typer


def one_case(n: int, k: int, b: int, m: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    from bal.strategies import select

    generator = torch.Generator().manual_seed(0)
    log_probs_N_K_C = torch.log_softmax(3 * torch.randn(n, k, 10, generator=generator), dim=-1)
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tic = time.perf_counter()
    select("batchbald", log_probs_N_K_C, b, generator=generator, max_configurations=m)
    seconds = time.perf_counter() - tic
    extra_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    return {"seconds": seconds, "extra_mib": extra_mib}


def main(
    n: str = typer.Option("10000"), k: str = typer.Option("20"), b: str = typer.Option("10"),
    m: str = typer.Option("10000"), threads: int = typer.Option(1), one: bool = typer.Option(False, hidden=True),
) -> None:
    if one:
        print(json.dumps(one_case(int(n), int(k), int(b), int(m), threads)))
        return
    print(f"BatchBALD selection, C=10, {threads} torch thread(s), one fresh process per case")
    print(f"{'N':>7} {'K':>4} {'b':>3} {'M':>6} {'seconds':>8} {'extra MiB':>10}")
    for case in itertools.product(*[map(int, s.split(",")) for s in (n, k, b, m)]):
        args = [f"--{name}={value}" for name, value in zip("nkbm", case)]
        out = subprocess.run([sys.executable, __file__, *args, f"--threads={threads}", "--one"],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        print(f"{case[0]:>7} {case[1]:>4} {case[2]:>3} {case[3]:>6} {r['seconds']:>8.1f} {r['extra_mib']:>10.0f}", flush=True)


if __name__ == "__main__":
    typer.run(main)
