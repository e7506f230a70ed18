"""Matplotlib figures: learning curves, TwoMoons decision maps, BALD's terms, acquired classes, suggestions.

Every function returns a matplotlib Figure; :func:`render` turns it into PNG (300 dpi) and
SVG bytes with no timestamps, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import io
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bal import strategies  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "bal", "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 8})



def style(strategy: str) -> tuple[str, str]:
    """(colour, marker) of ``strategy``, declared in its own module: the same in every figure, whatever
    other strategies exist (.dvc/plots/strategies.json maps the same names to the same colours)."""
    chosen = strategies.get(strategy)
    return chosen.colour, chosen.marker


def render(fig: plt.Figure) -> dict[str, bytes]:
    """The figure as {"png": 300-dpi PNG bytes, "svg": SVG bytes}; closes it."""
    out = {}
    for fmt, kwargs in (("png", {"dpi": 300, "metadata": {"Software": None}}), ("svg", {"metadata": {"Date": None}})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, **kwargs)
        out[fmt] = buffer.getvalue()
    plt.close(fig)
    return out


def accuracy_table(by_seed: dict[int, pd.DataFrame], column: str) -> pd.DataFrame:
    """``column`` in percent, one column per seed, indexed by n_labelled."""
    return pd.concat([c.set_index("n_labelled")[column] * 100 for c in by_seed.values()], axis=1)


def _draw_curves(
    ax, curves: dict[str, dict[int, pd.DataFrame]], references: dict[str, dict[int, float]] | None, column: str,
) -> None:
    """Curves of ``column`` with bands, each strategy in its :func:`style`."""
    for strategy, by_seed in curves.items():
        (colour, marker), acc = style(strategy), accuracy_table(by_seed, column)
        mean, std = acc.mean(axis=1), acc.std(axis=1, ddof=1).fillna(0)  # the sample std, as the tables (one seed: 0)
        seeds = len(by_seed)
        ax.plot(mean.index, mean, color=colour, lw=1.4, label=f"{strategy} ({seeds} seed{'s' * (seeds > 1)})")
        ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
        for labels, accuracy in (references or {}).get(strategy, {}).items():
            ax.plot(labels, accuracy, marker, mfc="none", mec=colour, ms=7, mew=1.5)
    ax.set_xlabel("labelled samples")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)


def _legend(ax, references: bool) -> None:
    if references:
        ax.plot([], [], "o", mfc="none", mec="grey", label="published (hollow markers)")
    ax.legend(loc="lower right")


class Panel(NamedTuple):
    """One learning-curve panel: the strategies it draws, published {labels: accuracy %} marks per
    strategy (hollow markers in its colour) and the accuracy range (None: all of it)."""

    title: str
    strategies: list[str]
    references: dict[str, dict[int, float]] | None = None
    ylim: tuple[float, float] | None = None


def learning_curves(
    curves: dict[str, dict[int, pd.DataFrame]], panels: list[Panel], column: str = "test_accuracy"
) -> plt.Figure:
    """Test accuracy (``column``) vs labels: mean over seeds with a +-1 std band, one line per strategy.

    A panel leaves out its strategies without runs in ``curves``, and is left out if none has.
    Two or more panels go in rows of two.
    """
    panels = [p._replace(strategies=[s for s in p.strategies if s in curves]) for p in panels]
    panels = [p for p in panels if p.strategies]
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.1 * cols, 4.0 * rows), layout="constrained", squeeze=False)
    for ax, (title, strategies, refs, ylim) in zip(axes.flat, panels):
        _draw_curves(ax, {s: curves[s] for s in strategies}, refs, column)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_title(title)
        _legend(ax, bool(refs))
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    return fig


def curves_by_size(
    panels: dict[int, dict[str, dict[int, pd.DataFrame]]],
    title: str,
    references: dict[int, dict[str, dict[int, float]]] | None = None,
    ylim: tuple[float, float] | None = None,
    column: str = "test_accuracy",
) -> plt.Figure:
    """One learning-curve panel per acquisition size (``panels[size]`` = curves as in
    :func:`learning_curves`), sharing the y axis; ``references[size]`` as there."""
    width = max(3.6 * len(panels), 6.4)  # one panel is as wide as the title needs
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.6), layout="constrained", sharey=True, squeeze=False)
    for ax, (size, curves) in zip(axes[0], panels.items()):
        refs = (references or {}).get(size)
        _draw_curves(ax, curves, refs, column)
        ax.set_title(f"acquisition size {size}")
        if ylim:
            ax.set_ylim(*ylim)
        if curves:
            _legend(ax, bool(refs))
        else:
            ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="grey")
    fig.suptitle(title)
    return fig


def decision_maps(
    panels: dict[str, dict],
    grid_x: np.ndarray,
    grid_y: np.ndarray,
    pool_x: np.ndarray,
    pool_y: np.ndarray,
) -> plt.Figure:
    """One TwoMoons panel per strategy.

    ``panels[strategy]`` holds ``prob`` (predictive p(class 1) on the grid), ``initial``
    (labelled points at the start, n x 2) and ``acquired`` (n x 2) with ``rounds`` (n,).
    """
    rows = -(-len(panels) // 5)
    cols = -(-len(panels) // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows + 0.5), layout="constrained", squeeze=False)
    last_round = max(int(p["rounds"].max()) for p in panels.values())
    for ax, (strategy, p) in zip(axes.flat, panels.items()):
        filled = ax.contourf(grid_x, grid_y, p["prob"], levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        filled.set_rasterized(True)
        ax.contour(grid_x, grid_y, p["prob"], levels=[0.5], colors="k", linewidths=1.2)
        ax.scatter(pool_x[:, 0], pool_x[:, 1], c=np.where(pool_y == 1, "#B2182B", "#2166AC"), s=2, alpha=0.25, linewidths=0)
        ax.scatter(p["initial"][:, 0], p["initial"][:, 1], marker="s", s=30, facecolor="white", edgecolor="k", label="initial")
        acquired = ax.scatter(p["acquired"][:, 0], p["acquired"][:, 1], c=p["rounds"], cmap="viridis", vmin=0,
                              vmax=last_round, s=26, edgecolor="k", linewidths=0.5, label="acquired")
        ax.set_title(strategy)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.colorbar(filled, ax=axes, shrink=0.6, label="predictive p(class 1)")
    fig.colorbar(acquired, ax=axes, shrink=0.6, label="acquired in round")
    axes.flat[0].legend(loc="lower left", fontsize=7)
    return fig


def bald_terms(
    rows: list[dict], grid_x: np.ndarray, grid_y: np.ndarray, pool_x: np.ndarray
) -> plt.Figure:
    """BALD's decomposition on a grid, one row per round.

    Each row dict holds ``title``, ``entropy`` (H of the mean prediction), ``expected_entropy``
    (mean of the samples' entropies), ``bald`` (their difference) and ``labelled`` (n x 2).
    """
    names = [("entropy", "predictive entropy H[y|x]"), ("expected_entropy", "expected entropy E_w H[y|x,w]"),
             ("bald", "BALD = mutual information")]
    fig, axes = plt.subplots(len(rows), 3, figsize=(8.4, 2.5 * len(rows) + 0.3), layout="constrained", squeeze=False)
    vmax = max(float(row["entropy"].max()) for row in rows)
    for r, row in enumerate(rows):
        for c, (key, label) in enumerate(names):
            ax = axes[r, c]
            image = ax.pcolormesh(grid_x, grid_y, row[key], cmap="magma", vmin=0, vmax=vmax, shading="auto",
                                  rasterized=True)
            ax.scatter(pool_x[:, 0], pool_x[:, 1], s=1, c="white", alpha=0.15, linewidths=0)
            ax.scatter(row["labelled"][:, 0], row["labelled"][:, 1], marker="x", s=18, c="#56B4E9", linewidths=1.2)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(label)
        axes[r, 0].set_ylabel(row["title"])
    fig.colorbar(image, ax=axes, shrink=0.7, label="nats")
    return fig


def acquired_classes(counts: pd.DataFrame, title: str) -> plt.Figure:
    """Heat map of how many labels of each class (columns) each strategy (rows) acquired."""
    fig, ax = plt.subplots(figsize=(0.5 * counts.shape[1] + 2.5, 0.4 * counts.shape[0] + 1.2), layout="constrained")
    image = ax.imshow(counts.to_numpy(), cmap="viridis", aspect="auto")
    for (r, c), value in np.ndenumerate(counts.to_numpy()):
        ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                color="white" if value < counts.to_numpy().max() * 0.6 else "black")
    ax.set_xticks(range(counts.shape[1]), counts.columns, rotation=45 if max(map(len, map(str, counts.columns))) > 2 else 0,
                  ha="right" if max(map(len, map(str, counts.columns))) > 2 else "center")
    ax.set_yticks(range(counts.shape[0]), counts.index)
    ax.set_xlabel("class of the acquired point")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="labels acquired")
    return fig


def suggestions(table: pd.DataFrame, images_B_C_H_W: np.ndarray | None, title: str) -> plt.Figure:
    """The suggested items, best first, each with its predicted class, that class's probability and its
    acquisition score: a grid of the images, or for a table one bar of score per item."""
    if images_B_C_H_W is None:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(table) + 1.2), layout="constrained")
        ax.barh(range(len(table)), table.score, color="#4c72b0")
        ax.set_yticks(range(len(table)), [f"{r.item}: {r.predicted_class} ({r.probability:.2f})" for r in table.itertuples()])
        ax.invert_yaxis()
        ax.set_xlabel("acquisition score")
        ax.set_title(title)
        return fig
    caption = [f"{r.rank}. {r.predicted_class} ({r.probability:.2f})\nscore {r.score:.3g}\n{str(r.item).split('/')[-1][:18]}"
               for r in table.itertuples()]
    columns = min(len(table), 8)
    rows = -(-len(table) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.8 * rows + 0.4), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, image_C_H_W, text in zip(axes.flat, images_B_C_H_W, caption):
        if image_C_H_W.dtype != np.uint8:  # an npz's float images: each stretched to [0, 1]
            image_C_H_W = (image_C_H_W - image_C_H_W.min()) / max(float(np.ptp(image_C_H_W)), 1e-12)
        top = 255 if image_C_H_W.dtype == np.uint8 else 1
        ax.imshow(image_C_H_W[0] if len(image_C_H_W) == 1 else image_C_H_W.transpose(1, 2, 0),
                  cmap="gray" if len(image_C_H_W) == 1 else None, vmin=0, vmax=top)
        ax.set_title(text, fontsize=7)
    fig.suptitle(title)
    return fig
