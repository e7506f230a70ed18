"""Your own data at scale: prepare a generated image folder and a generated CSV, and time a round.

    python benchmarks/own_data.py                       # 100,000 images of 64x64 RGB; 1,000,000 rows x 50
    python benchmarks/own_data.py --images 5000 --rows 100000

Targets: the image folder prepared within 2 minutes and 2 GB of peak memory, the CSV within 1
minute. Each prepare runs as the stage does (``stages/prepare.py``) in a child process under GNU
time, whose wall time and peak resident memory are printed; generating the files is not timed. Then two rounds of a
learn stage on the image dataset (MNIST's protocol: 300 steps, 2,000 scored with K = 100) give the
seconds of a round at 64 x 64.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_stage(args: list[str], cwd: Path) -> tuple[float, float]:
    """Seconds and peak MiB of a stage script in a fresh child process (GNU time's maximum resident set)."""
    tic = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(cwd / "peak_kib"), sys.executable, *args], cwd=cwd,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if result.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr}")
    return seconds, int((cwd / "peak_kib").read_text().split()[-1]) / 1024


def main(images: int = typer.Option(100_000), size: int = typer.Option(64), rows: int = typer.Option(1_000_000),
         features: int = typer.Option(50)) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "images"
        for c in range(10):
            (folder / f"class_{c}").mkdir(parents=True)
        for i in range(images):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"class_{i % 10}" / f"{i}.png", compress_level=1)
        table = pd.DataFrame(rng.normal(size=(rows, features)).astype(np.float32), columns=[f"f{j}" for j in range(features)])
        table["label"] = rng.integers(0, 5, rows)
        table.to_csv(work / "table.csv", index=False)

        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["own"] = {"images": {"source": "image_folder", "path": str(folder), "channels": 3, "n_test": 1000},
                         "table": {"source": "csv", "path": str(work / "table.csv"), "n_test": 10_000}}
        params["run"]["datasets"] = ["images"]
        params["learn"]["images"] = {**params["learn"]["mnist"], "budget": 40, "pool_subset": min(2000, images // 4)}
        (work / "params.yaml").write_text(yaml.safe_dump(params))

        print(f"{'prepare':<44} {'seconds':>8} {'peak MiB':>9}")
        for name, what in (("images", f"image folder, {images:,} x {size}x{size} RGB"), ("table", f"CSV, {rows:,} rows x {features}")):
            seconds, mib = run_stage([str(ROOT / "stages/prepare.py"), "--dataset", name, "--out", str(work / "prepared" / name),
                                      "--params", str(work / "params.yaml")], work)
            print(f"{what:<44} {seconds:>8.1f} {mib:>9.0f}", flush=True)

        run_stage([str(ROOT / "stages/learn.py"), "--dataset", "images", "--strategy", "bald", "--seed", "0",
                   "--prepared", str(work / "prepared" / "images"), "--out", str(work / "run"),
                   "--checkpoint", str(work / "run.json"), "--params", str(work / "params.yaml")], work)
        curve = pd.read_csv(work / "run" / "curve.csv")
        seconds = curve.filter(like="_seconds").sum(axis=1)
        print(f"\nlearn, {size}x{size} RGB, MNIST protocol: seconds a round "
              + ", ".join(f"{s:.1f} (at {n} labels)" for s, n in zip(seconds, curve.n_labelled)))


if __name__ == "__main__":
    typer.run(main)
