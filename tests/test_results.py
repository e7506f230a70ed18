import pandas as pd
import pytest

from bal.errors import DataError
from bal.results import (
    acquired_per_class, ceiling_picks, copies_acquired, labels_to, long_table, normalised_auc, paired_comparisons,
    paired_difference, quantile, read_runs, summarise,
)


def curve(accs, start=20, step=10):
    return pd.DataFrame({"n_labelled": [start + step * i for i in range(len(accs))], "test_accuracy": accs})


def test_labels_to_first_crossing():
    c = curve([0.5, 0.91, 0.89, 0.96])
    assert labels_to(c, 0.90) == 30
    assert labels_to(c, 0.95) == 50
    assert labels_to(c, 0.97) == float("inf")


def test_auc_is_mean_accuracy_over_label_range():
    assert normalised_auc(curve([0.5, 1.0])) == pytest.approx(0.75)
    assert normalised_auc(curve([0.6, 0.6, 0.6])) == pytest.approx(0.6)


def test_summary_medians_and_never_reached():
    s = summarise({0: curve([0.8, 0.9, 0.95]), 1: curve([0.9, 0.9, 0.93]), 2: curve([0.85, 0.92, 0.94])})
    assert s["labels_to_90"] == 30  # median of 30, 20, 30
    assert s["labels_to_90_by_seed"] == [30, 20, 30]
    assert s["labels_to_95"] is None  # two of three seeds never reach it
    assert s["labels_to_95_by_seed"] == [40, None, None]
    assert s["final_accuracy"] == pytest.approx((0.95 + 0.93 + 0.94) / 3)
    assert s["final_accuracy_std"] == pytest.approx(0.01)  # sample std of 0.95, 0.93, 0.94
    assert s["labels_to_90_iqr"] == [25, 30]  # quartiles of 20, 30, 30
    assert s["labels_to_95_iqr"] == [None, None]
    assert s["seeds"] == [0, 1, 2]


def test_summary_reads_the_reported_column():
    c = curve([0.5, 0.6]).assign(test_accuracy_dropout_off=[0.9, 0.96])
    s = summarise({0: c}, "test_accuracy_dropout_off")
    assert (s["labels_to_90"], s["labels_to_95"], s["final_accuracy"]) == (20, 30, 0.96)
    assert summarise({0: c})["labels_to_90"] is None


def test_quantile_interpolates_and_never_reached_wins():
    assert quantile([10, 20, 30, 40, 50], 0.25) == 20
    assert quantile([10, 20, 30, 40], 0.25) == pytest.approx(17.5)
    assert quantile([10, 20, float("inf")], 0.75) == float("inf")
    assert quantile([10, 20, float("inf")], 0.5) == 20


def test_paired_difference_gives_the_t_interval_with_n_minus_one_degrees_of_freedom():
    d = paired_difference({0: 1.0, 1: 3.0, 2: 5.0, 3: 9.0}, {0: 0.0, 1: 1.0, 2: 2.0, 4: 7.0})  # seed 3, 4 unpaired
    assert d["seeds"] == [0, 1, 2] and d["by_seed"] == [1.0, 2.0, 3.0] and d["n"] == 3
    # mean 2, sample sd 1, t(0.975, 2 df) = 4.302653 (tables): 2 -+ 4.302653 / sqrt(3)
    assert d["mean"] == pytest.approx(2.0) and d["ci95"] == pytest.approx([2 - 2.484138, 2 + 2.484138], abs=1e-6)
    five = paired_difference(dict(enumerate([3.0, 1.0, 4.0, 1.0, 5.0])), dict.fromkeys(range(5), 0.0))
    # mean 2.8, sample sd 1.788854 (standard error 0.8), t(0.975, 4 df) = 2.776445: half-width 2.221156
    assert five["ci95"] == pytest.approx([2.8 - 2.221156, 2.8 + 2.221156], abs=1e-6)


def test_below_three_seeds_there_is_no_interval_only_each_seeds_difference():
    d = paired_difference({0: 5.0, 1: 9.0}, {0: 2.0, 1: 2.0})
    assert d["ci95"] is None and d["by_seed"] == [3.0, 7.0] and d["n"] == 2


def test_a_seed_that_never_reaches_a_threshold_counts_as_the_budget_and_is_never_dropped():
    inf = float("inf")
    d = paired_difference({0: inf, 1: 300.0, 2: 500.0}, {0: 400.0, 1: 200.0, 2: 300.0}, budget=1000)
    assert d["seeds"] == [0, 1, 2] and d["by_seed"] == [600.0, 100.0, 200.0] and d["censored"] == [0]
    assert d["bound"] == "lower"  # the strategy would have needed at least the budget: at least 600 more
    assert paired_difference({0: 300.0}, {0: inf}, budget=1000)["bound"] == "upper"
    assert paired_difference({0: inf, 1: 1.0}, {0: 3.0, 1: inf}, budget=10)["bound"] == "none"
    assert paired_difference({0: 3.0}, {0: 2.0})["bound"] is None
    with pytest.raises(ValueError):
        paired_difference({0: inf}, {0: 1.0})  # an AUC is never censored: without a budget, inf is an error


def test_paired_comparisons_against_random_and_bald():
    curves = {"random": {0: curve([0.5, 0.6]), 1: curve([0.5, 0.7])},
              "bald": {0: curve([0.5, 0.96]), 1: curve([0.6, 0.95])},
              "margin": {0: curve([0.5, 0.8])}}
    c = paired_comparisons(curves)
    assert set(c["random"]) == {"vs_bald"} and set(c["bald"]) == {"vs_random"}
    assert set(c["margin"]) == {"vs_random", "vs_bald"}
    assert c["bald"]["vs_random"]["auc"]["by_seed"] == pytest.approx([0.18, 0.175])
    to_95 = c["bald"]["vs_random"]["labels_to_95"]  # random never reaches 95%: counted as the budget, an upper bound
    assert to_95["censored"] == [0, 1] and to_95["bound"] == "upper" and to_95["ci95"] is None  # 2 seeds: no interval
    assert c["margin"]["vs_bald"]["auc"]["seeds"] == [0]
    assert c["margin"]["vs_bald"]["labels_to_80"]["by_seed"] == [0.0]  # every threshold: both reach 80% at once
    assert c["margin"]["vs_bald"]["labels_to_85"]["bound"] == "lower"  # margin never reaches 85%


def test_ceiling_picks_per_round():
    seed0 = pd.DataFrame({"round": [0, 0, 0, 1, 1, 1], "past_ceiling": [False, False, True, False, True, True]})
    seed1 = pd.DataFrame({"round": [0, 0, 0], "past_ceiling": [False, False, False]})
    assert ceiling_picks([seed0, seed1]) == {"rounds_past_ceiling": pytest.approx(2 / 3), "first_pick_past_ceiling": 2.5}
    assert ceiling_picks([seed1]) == {"rounds_past_ceiling": 0.0, "first_pick_past_ceiling": None}


def test_long_table_has_a_row_per_strategy_seed_and_size():
    table = long_table({"bald": {0: curve([0.5, 0.7]), 1: curve([0.7, 0.9])}, "random": {0: curve([0.4, 0.6])}})
    assert list(table.columns) == ["n_labelled", "strategy", "seed", "accuracy"]
    assert table.values.tolist() == [[20, "bald", 0, 0.5], [30, "bald", 0, 0.7], [20, "bald", 1, 0.7],
                                     [30, "bald", 1, 0.9], [20, "random", 0, 0.4], [30, "random", 0, 0.6]]
    off = long_table({"bald": {0: curve([0.5, 0.7]).assign(test_accuracy_dropout_off=[0.6, 0.8])}}, "test_accuracy_dropout_off")
    assert off.accuracy.tolist() == [0.6, 0.8]


def test_copies_acquired_counts_repeats_of_an_original():
    acquired = pd.DataFrame({"pool_index": [3, 13, 5, 23, 8]})  # originals mod 10: 3, 3, 5, 3, 8
    assert copies_acquired(acquired, 10) == pytest.approx(2 / 5)
    assert copies_acquired(acquired, 100) == 0.0


def test_read_runs_missing_is_an_error_or_a_named_warning(tmp_path):
    for strategy, seed in (("bald", 0), ("bald", 1), ("random", 0)):
        (tmp_path / "mnist" / strategy / "b4" / str(seed)).mkdir(parents=True)
        curve([0.5, 0.9]).to_csv(tmp_path / "mnist" / strategy / "b4" / str(seed) / "curve.csv", index=False)
    with pytest.raises(DataError, match="dvc repro study@mnist-random-4-1"):
        read_runs(tmp_path, "mnist", ["bald", "random"], [0, 1], "curve.csv", 4)
    with pytest.warns(UserWarning) as record:
        tables = read_runs(tmp_path, "mnist", ["bald", "random", "margin"], [0, 1], "curve.csv", 4, missing_ok=True)
    named = sorted(str(w.message).split("stage ")[1].split(")")[0] for w in record)
    assert named == ["study@mnist-margin-4-0", "study@mnist-margin-4-1", "study@mnist-random-4-1"]
    assert {s: sorted(t) for s, t in tables.items()} == {"bald": [0, 1], "random": [0]}


def test_acquired_per_class_is_a_mean_over_seeds():
    tables = {0: pd.DataFrame({"label": [0, 2, 2]}), 1: pd.DataFrame({"label": [2, 2, 2]})}
    assert acquired_per_class(tables, 4) == [0.5, 0.0, 2.5, 0.0]


def test_the_reported_split_is_read_from_the_curves():
    from bal.results import evaluated_split

    dev = pd.DataFrame({"round": [0], "n_labelled": [4], "dev_accuracy": [0.5], "dev_nll": [0.7],
                        "dev_accuracy_dropout_off": [0.6]})
    assert evaluated_split({}, {"bald": {0: dev}}) == "dev"
    assert evaluated_split({"bald": {0: dev.rename(columns=lambda c: c.replace("dev_", "test_"))}}) == "test"
    assert evaluated_split({}) == "test"  # no runs yet
