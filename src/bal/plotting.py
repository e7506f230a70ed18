"""Matplotlib figures of learning curves."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]


def learning_curves(curves: dict[str, dict[int, pd.DataFrame]], title: str) -> bytes:
    """Test accuracy vs labelled-set size, mean over seeds with a +-1 std band, as PNG bytes."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for colour, (strategy, by_seed) in zip(PALETTE * 2, curves.items()):
        acc = pd.concat([c.set_index("n_labelled").test_accuracy for c in by_seed.values()], axis=1)
        mean, std = acc.mean(axis=1) * 100, acc.std(axis=1, ddof=0).fillna(0) * 100
        ax.plot(mean.index, mean, color=colour, label=f"{strategy} ({len(by_seed)} seed{'s' * (len(by_seed) > 1)})")
        ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    ax.set_xlabel("labelled samples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
