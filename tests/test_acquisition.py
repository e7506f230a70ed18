import importlib
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bal.strategies
from bal.strategies import PoolInputs, Strategy, get, names, score, select

STRATEGIES_DIR = Path(bal.strategies.__file__).parent


def log_probs(probs_N_K_C):
    return torch.tensor(probs_N_K_C, dtype=torch.float64).log()


# Three pool points, K = 4 samples, C = 2 classes:
#   0: every sample confident in class 0 (agree, certain)
#   1: every sample says 50/50          (agree, ambiguous: aleatoric)
#   2: samples confidently disagree     (disagree: epistemic)
AGREE_SURE = [[0.9, 0.1]] * 4
AGREE_UNSURE = [[0.5, 0.5]] * 4
DISAGREE = [[0.99, 0.01], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]]
CASE = log_probs([AGREE_SURE, AGREE_UNSURE, DISAGREE])


def h(*p):
    return -sum(x * math.log(x) for x in p)


def test_bald_values_and_ranking():
    scores = score("bald", CASE)
    expected = [0.0, 0.0, h(0.5, 0.5) - h(0.99, 0.01)]
    assert scores.tolist() == pytest.approx(expected, abs=1e-12)
    assert select("bald", CASE, 1).indices == [2]


def test_max_entropy_values():
    assert score("max_entropy", CASE).tolist() == pytest.approx([h(0.9, 0.1), h(0.5, 0.5), h(0.5, 0.5)], abs=1e-12)


def test_margin_least_confidence_values():
    assert score("margin", CASE).tolist() == pytest.approx([-0.8, 0.0, 0.0], abs=1e-12)
    assert score("least_confidence", CASE).tolist() == pytest.approx([0.1, 0.5, 0.5], abs=1e-12)


def test_variation_ratios_counts_votes():
    three_to_one = log_probs([[[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]]])
    assert score("variation_ratios", three_to_one).tolist() == pytest.approx([0.25])
    assert score("variation_ratios", CASE).tolist() == pytest.approx([0.0, 0.0, 0.5])


def test_mean_std_is_population_std_over_samples():
    # class-0 probabilities 0.99, 0.01, 0.99, 0.01: mean 0.5, std 0.49; class 1 the same
    assert score("mean_std", CASE).tolist() == pytest.approx([0.0, 0.0, 0.49], abs=1e-12)


def test_top_k_order_and_scores():
    batch = select("max_entropy", CASE, 3, generator=torch.Generator().manual_seed(0))
    assert batch.indices[2] == 0
    assert sorted(batch.indices[:2]) == [1, 2]
    assert batch.scores == pytest.approx([h(0.5, 0.5), h(0.5, 0.5), h(0.9, 0.1)])


def test_ties_broken_by_generator():
    flat = torch.full((50, 2, 3), math.log(1 / 3))
    picks = {tuple(select("bald", flat, 5, generator=torch.Generator().manual_seed(s)).indices) for s in range(5)}
    assert len(picks) > 1
    again = select("bald", flat, 5, generator=torch.Generator().manual_seed(3)).indices
    assert again == select("bald", flat, 5, generator=torch.Generator().manual_seed(3)).indices
    assert select("bald", flat, 5).indices == [0, 1, 2, 3, 4]


def test_random_is_reproducible_without_replacement_and_needs_no_predictions():
    a = select("random", PoolInputs(size=100), 30, generator=torch.Generator().manual_seed(7))
    b = select("random", torch.zeros(100, 1, 1), 30, generator=torch.Generator().manual_seed(7))
    assert a == b
    assert len(set(a.indices)) == 30 and all(0 <= i < 100 for i in a.indices)
    assert a != select("random", PoolInputs(size=100), 30, generator=torch.Generator().manual_seed(8))


def test_a_strategy_without_its_inputs_is_refused():
    with pytest.raises(ValueError, match="strategy 'bald' needs log_probs_N_K_C"):
        select("bald", PoolInputs(size=3), 1)


@pytest.mark.parametrize("name", [name for name in names() if get(name).needs_samples])
def test_one_mc_sample_is_refused_where_every_score_would_be_zero(name):
    one_sample = CASE[:, :1]
    with pytest.raises(ValueError, match=f"strategy '{name}' needs at least 2 MC samples, got K = 1"):
        select(name, one_sample, 1, generator=torch.Generator())
    if get(name).scorer is not None:
        with pytest.raises(ValueError, match="needs at least 2 MC samples"):
            score(name, one_sample)


def test_unknown_strategy_lists_known_ones():
    with pytest.raises(ValueError, match="unknown strategy 'bald2'; known strategies: badge, bald, batchbald, epig"):
        select("bald2", CASE, 1)
    with pytest.raises(ValueError, match="known strategies: " + ", ".join(names())):
        get("bald2")


def test_the_registry_is_the_package():
    """Every module of bal/strategies is a strategy, found by name; each has its own colour and marker."""
    modules = sorted(p.stem for p in STRATEGIES_DIR.glob("*.py") if p.stem != "__init__")
    assert len(modules) >= 13 and names() == modules
    for name in modules:
        declared = importlib.import_module(f"bal.strategies.{name}").STRATEGY
        assert isinstance(declared, Strategy), name
        strategy = get(name)
        assert isinstance(strategy, Strategy) and strategy.name == name
        assert (strategy.colour, strategy.marker) == (declared.colour, declared.marker)
        assert (strategy.scorer is None) != (strategy.selector is None), name  # one or the other
    colours = [get(name).colour.upper() for name in names()]
    markers = [get(name).marker for name in names()]
    assert len(set(colours)) == len(colours), "two strategies share a colour"
    assert len(set(markers)) == len(markers), "two strategies share a marker"


@pytest.mark.parametrize("batch_size", [0, -1, 4])
def test_batch_size_out_of_range(batch_size):
    with pytest.raises(ValueError, match="batch_size must be between 1 and the pool size 3"):
        select("bald", CASE, batch_size)


def test_nan_log_probs_are_refused():
    broken = CASE.clone()
    broken[1, 2, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        select("bald", broken, 1)


def test_random_has_no_per_point_score():
    with pytest.raises(ValueError, match="use select"):
        score("random", CASE)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(2, 6), c=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_bald_between_zero_and_entropy(n, k, c, seed):
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * 4, dim=-1)
    bald, entropy = score("bald", lp), score("max_entropy", lp)
    assert (bald >= 0).all() and (bald <= entropy + 1e-12).all() and (entropy <= math.log(c) + 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), k=st.integers(2, 5), c=st.integers(2, 4), seed=st.integers(0, 10_000), data=st.data())
def test_every_strategy_picks_distinct_pool_points_and_scorers_the_best(n, k, c, seed, data):
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * 4, dim=-1)
    pool = PoolInputs(n, lp, target_log_probs_M_K_C=torch.log_softmax(torch.randn(3, k, c, generator=g) * 4, dim=-1),
                      dropout_off_probs_N_C=torch.softmax(torch.randn(n, c, generator=g) * 4, dim=-1),
                      features_N_H=torch.relu(torch.randn(n, 5, generator=g)))
    b = data.draw(st.integers(1, n - 1))
    for name in names():
        strategy = get(name)
        batch = select(name, pool, b, generator=torch.Generator().manual_seed(seed))
        assert len(batch.indices) == b == len(batch.scores) and len(set(batch.indices)) == b
        assert all(0 <= i < n for i in batch.indices)
        if strategy.scorer is not None:
            scores = score(name, pool)
            assert batch.scores == scores[batch.indices].tolist()
            unchosen = [i for i in range(n) if i not in batch.indices]
            assert min(batch.scores) >= scores[unchosen].max().item()
            assert batch.scores == sorted(batch.scores, reverse=True)
