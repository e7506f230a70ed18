"""Learning-curve panels: which strategies each panel draws, in which colour, with which marks."""

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_hex

import json

from bal.plotting import Panel, curves_by_size, learning_curves, style
from bal.strategies import get, names

ROOT = Path(__file__).resolve().parents[1]
# The colours the strategies have always had (bal.plotting's palette before they moved into the strategy modules).
BLACK, SKY_BLUE, REDDISH_PURPLE = "#000000", "#56B4E9", "#CC79A7"


def curve(accuracies):
    return pd.DataFrame({"n_labelled": [20, 30, 40], "test_accuracy": accuracies})


CURVES = {"random": {0: curve([0.5, 0.6, 0.7]), 1: curve([0.5, 0.7, 0.8])},
          "bald": {0: curve([0.5, 0.8, 0.9])},
          "margin": {0: curve([0.6, 0.8, 0.95])}}


def lines(ax):
    """{legend label: colour} of the strategy lines of a panel."""
    return {line.get_label(): to_hex(line.get_color()).upper() for line in ax.get_lines() if "seed" in line.get_label()}


def zoomed_marks(ax):
    return [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()
            if line.get_marker() not in ("None", "") and len(line.get_xdata()) == 1]


def test_panels_keep_colours_drop_missing_strategies_and_empty_panels():
    panels = [Panel("all", list(CURVES)),
              Panel("zoomed", ["random", "margin", "not_run"], {"margin": {25: 90.0, 35: 95.0}}, (85, 100)),
              Panel("nothing run", ["not_run"])]
    fig = learning_curves(CURVES, panels)
    visible = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in visible] == ["all", "zoomed"]
    everything, zoomed = (lines(ax) for ax in visible)
    assert everything == {"random (2 seeds)": BLACK, "bald (1 seed)": REDDISH_PURPLE, "margin (1 seed)": SKY_BLUE}
    assert zoomed == {"random (2 seeds)": BLACK, "margin (1 seed)": SKY_BLUE}
    assert zoomed_marks(visible[1]) == [(25, 90.0), (35, 95.0)]
    assert visible[1].get_ylim() == (85, 100)
    mean = [line for line in visible[0].get_lines() if line.get_label() == "random (2 seeds)"][0]
    assert list(mean.get_ydata()) == [50.0, 65.0, 75.0]


def test_the_papers_panels_group_the_strategies_and_catch_any_other(monkeypatch):
    """A dataset of report.papers gets the papers' groups (on their range), any other image dataset one zoom
    on its own range, a table (TwoMoons, which has its maps) the overview alone; no dataset is named in code."""
    monkeypatch.syspath_prepend(str(ROOT / "stages"))
    from figures import PAPER_GROUPS, curve_panels

    grouped = ["random", "max_entropy", "margin", "least_confidence", "variation_ratios", "mean_std", "bald",
               "batchbald", "power_bald", "epig", "badge"]
    assert {s for group in PAPER_GROUPS for s in group.strategies} == set(grouped)
    panels = curve_panels("mnist", "image", ["mnist"], grouped, (70, 90))
    assert panels[0].strategies == grouped and panels[1:] == PAPER_GROUPS  # the papers' range
    extra = curve_panels("mnist", "image", ["mnist"], [*grouped, "my_strategy"], (70, 90))
    assert extra[-1].strategies == ["random", "bald", "my_strategy"]
    assert [p.ylim for p in curve_panels("mnist", "image", [], grouped, (70, 90))] == [None, (70, 90)]
    assert [p.ylim for p in curve_panels("fashion_mnist", "image", ["mnist"], grouped, (70, 90))] == [None, (70, 90)]
    assert len(curve_panels("twomoons", "table", ["twomoons"], grouped, (70, 90))) == 1


def test_zoom_spans_the_strategies_from_a_quarter_of_the_way(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "stages"))
    from figures import zoom_range

    def curve(accs):
        return pd.DataFrame({"n_labelled": [10, 20, 30, 40, 50], "acc": accs})

    curves = {"random": {0: curve([0.5, 0.70, 0.75, 0.78, 0.80]), 1: curve([0.5, 0.72, 0.75, 0.78, 0.80])},
              "bald": {0: curve([0.5, 0.80, 0.85, 0.87, 0.884])}}
    assert zoom_range(curves, "acc") == (70, 90)  # random's mean 71% at the second of five sizes; bald's best 88.4%


def test_a_strategy_has_one_colour_in_every_figure_and_in_dvc_plots():
    """Colours are the strategies' own, not the order of a figure's strategies; the DVC template agrees."""
    assert [style(s) for s in names()] == [(get(s).colour, get(s).marker) for s in names()]
    assert len({style(s)[0].upper() for s in names()}) == len(names())  # no two strategies share a colour
    study = curves_by_size({10: {"bald": CURVES["bald"], "margin": CURVES["margin"]}}, "study")
    assert lines(study.axes[0]) == {"bald (1 seed)": style("bald")[0], "margin (1 seed)": style("margin")[0]}
    template = json.loads((ROOT / ".dvc/plots/strategies.json").read_text().replace('"<DVC_METRIC_DATA>"', "[]"))
    scale = template["encoding"]["color"]["scale"]
    assert len(scale["domain"]) == len(set(scale["domain"])) == len(scale["range"])
    assert dict(zip(scale["domain"], scale["range"])) == {s: style(s)[0] for s in names()}


def test_the_band_is_the_sample_standard_deviation_over_seeds_as_in_the_tables():
    fig = learning_curves(CURVES, [Panel("all", ["random", "bald"])])
    random_band, bald_band = [c.get_paths()[0].vertices for c in fig.axes[0].collections if len(c.get_paths())]
    at_30 = [y for x, y in random_band if abs(x - 30) < 1e-9]
    # random's seeds: 60 and 70 at 30 labels: mean 65, sample std sqrt(50) = 7.07 (the population's would be 5)
    assert max(at_30) == pytest.approx(65 + 50 ** 0.5) and min(at_30) == pytest.approx(65 - 50 ** 0.5)
    assert all(y == pytest.approx(80) for x, y in bald_band if abs(x - 30) < 1e-9)  # one seed: no band


def test_a_one_panel_study_figure_holds_its_whole_title():
    fig = curves_by_size({1: {"bald": CURVES["bald"]}}, "mnist_unbalanced: test accuracy vs labelled samples")
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    assert 0 <= title.x0 and title.x1 <= fig.bbox.x1
