import itertools
import math
import re

import pytest
import torch

from bal.errors import ConfigError, Invalid
from bal.strategies import CEILING_FRACTION, get, past_ceiling, score, select
from bal.strategies.batchbald import exact_configurations, joint_entropies, sampled_configurations


def random_log_probs(n, k, c, seed, sharpness=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * sharpness, dim=-1)


def brute_force_joint_entropy(probs_N_K_C, points):
    """-sum over every label configuration of the points of p log p, p = mean_k prod_i p(y_i | w_k)."""
    k, c = probs_N_K_C.shape[1:]
    total = 0.0
    for labels in itertools.product(range(c), repeat=len(points)):
        p = sum(math.prod(probs_N_K_C[i, kk, y].item() for i, y in zip(points, labels)) for kk in range(k)) / k
        total -= p * math.log(p) if p > 0 else 0.0
    return total


def brute_force_mutual_information(probs_N_K_C, points):
    conditional = sum(torch.special.entr(probs_N_K_C[i]).sum(-1).mean().item() for i in points)
    return brute_force_joint_entropy(probs_N_K_C, points) - conditional


def test_exact_joint_entropy_equals_enumeration():
    probs = random_log_probs(6, 4, 3, seed=0).exp()
    probs_K_M = torch.ones(4, 1, dtype=torch.float64)
    for i in (1, 4):
        probs_K_M = exact_configurations(probs_K_M, probs[i])
    entropies = joint_entropies(probs_K_M, probs.transpose(1, 2), chunk_elements=20)  # several chunks
    for candidate in range(6):
        assert entropies[candidate].item() == pytest.approx(brute_force_joint_entropy(probs, [1, 4, candidate]), abs=1e-12)
    for workspace in (torch.empty(5, dtype=torch.float64), torch.empty(10_000, dtype=torch.float64)):  # too small, large
        assert torch.equal(joint_entropies(probs_K_M, probs.transpose(1, 2), chunk_elements=20, workspace=workspace),
                           entropies)


def test_batchbald_equals_brute_force_greedy():
    lp = random_log_probs(6, 4, 3, seed=1)
    probs = lp.exp()
    batch = select("batchbald", lp, 3)
    chosen = []
    for step in range(3):
        mi = {x: brute_force_mutual_information(probs, chosen + [x]) for x in range(6) if x not in chosen}
        best = max(mi, key=mi.get)
        assert batch.indices[step] == best
        assert batch.scores[step] == pytest.approx(mi[best], abs=1e-12)
        chosen.append(best)


def test_batch_size_one_is_bald_top_point():
    lp = random_log_probs(50, 8, 10, seed=2)
    batch = select("batchbald", lp, 1)
    bald = score("bald", lp)
    assert batch.indices == [int(bald.argmax())]
    assert batch.scores[0] == pytest.approx(bald.max().item(), abs=1e-12)


def test_sampled_joint_entropy_close_to_exact():
    probs = random_log_probs(8, 6, 3, seed=3, sharpness=1.5).exp()
    chosen = [0, 1, 2, 3]
    probs_K_M = torch.ones(6, 1, dtype=torch.float64)
    for i in chosen:
        probs_K_M = exact_configurations(probs_K_M, probs[i])
    exact = joint_entropies(probs_K_M, probs.transpose(1, 2))
    sampled_K_U, frequency_U = sampled_configurations(probs[chosen], 40_000, torch.Generator().manual_seed(0))
    assert len(frequency_U) < 40_000 and torch.isclose(frequency_U.sum(), torch.tensor(1.0, dtype=torch.float64))
    estimate = joint_entropies(sampled_K_U, probs.transpose(1, 2), frequency_U)
    # Monte-Carlo error of a mean of 40k draws of a quantity bounded by ~log(C^5) = 5.5 nats: < 0.03
    assert torch.allclose(estimate, exact, atol=0.03)
    assert not torch.equal(estimate, exact)


def test_batchbald_never_picks_duplicates_but_top_k_bald_does():
    lp = random_log_probs(20, 10, 4, seed=5, sharpness=1.0)
    informative = random_log_probs(1, 10, 4, seed=6, sharpness=6.0)  # confident, disagreeing samples
    pool = torch.cat([lp, informative, informative, informative])
    copies = {20, 21, 22}
    assert set(select("bald", pool, 3).indices) == copies
    picked = select("batchbald", pool, 3).indices
    assert len(copies & set(picked)) == 1


def test_batchbald_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 MC samples"):
        select("batchbald", random_log_probs(5, 1, 3, seed=0), 2)


def test_batchbald_switches_from_exact_to_sampled_as_enumeration_says():
    """C = 5 and 3,000 configurations: exact for 4 points (625), sampled from the 5th (3,125)."""
    lp = random_log_probs(7, 4, 5, seed=8, sharpness=1.5)
    probs = lp.exp()
    batch = select("batchbald", lp, 5, generator=torch.Generator().manual_seed(0), max_configurations=3000)
    chosen = []
    for step in range(4):  # exact: the brute-force greedy, to float precision
        mi = {x: brute_force_mutual_information(probs, chosen + [x]) for x in range(7) if x not in chosen}
        best = max(mi, key=mi.get)
        assert batch.indices[step] == best and batch.scores[step] == pytest.approx(mi[best], abs=1e-12)
        chosen.append(best)
    mi = {x: brute_force_mutual_information(probs, chosen + [x]) for x in range(7) if x not in chosen}
    fifth = batch.indices[4]
    assert fifth in mi
    assert batch.scores[4] != pytest.approx(mi[fifth], abs=1e-9)  # an estimate: the sampled path ran ...
    assert batch.scores[4] == pytest.approx(mi[fifth], abs=0.05)  # ... and is close to the enumeration
    assert mi[fifth] >= max(mi.values()) - 0.05


def test_batchbald_breaks_ties_with_the_generator_as_top_k_does():
    flat = torch.full((30, 3, 4), math.log(1 / 4), dtype=torch.float64)  # every gain equal (0)
    picks = {tuple(select("batchbald", flat, 3, generator=torch.Generator().manual_seed(s)).indices) for s in range(6)}
    assert len(picks) > 1
    again = [select("batchbald", flat, 3, generator=torch.Generator().manual_seed(2)).indices for _ in range(2)]
    assert again[0] == again[1]
    assert select("batchbald", flat, 3).indices == [0, 1, 2]  # no generator: index order
    assert select("batchbald", flat, 3, generator=torch.Generator().manual_seed(2)).indices == \
        select("bald", flat, 3, generator=torch.Generator().manual_seed(2)).indices  # the same tie order as top_k


def test_joint_mutual_information_is_capped_at_log_k_and_flagged_near_it():
    # K = 2 samples that confidently disagree on every point: one point already carries all log 2 nats
    certain = torch.tensor([[[1 - 1e-9, 1e-9], [1e-9, 1 - 1e-9]]] * 4, dtype=torch.float64).log()
    batch = select("batchbald", certain, 3)
    assert batch.scores == pytest.approx([math.log(2)] * 3, abs=1e-6)
    assert past_ceiling(get("batchbald"), batch.scores, 2) == [True, True, True]
    assert past_ceiling(get("bald"), batch.scores, 2) == [False] * 3  # per-point scores: no joint ceiling
    lp = random_log_probs(40, 4, 10, seed=9, sharpness=2.0)  # K = 4: the exact joint MI of any batch <= log 4
    scores = select("batchbald", lp, 4).scores  # 10^4 configurations: exact
    assert scores == sorted(scores) and max(scores) <= math.log(4) + 1e-9
    flags = past_ceiling(get("batchbald"), scores, 4)
    assert flags == [s > CEILING_FRACTION * math.log(4) for s in scores] and flags[0] is False and flags[-1] is True


# The stochastic strategies (Kirsch et al. 2023): name, the score they sample by, weight(score, beta).
STOCHASTIC = [
    ("power_bald", "bald", lambda s, beta: s**beta),
    ("softmax_bald", "bald", lambda s, beta: math.exp(beta * s)),
    ("power_entropy", "max_entropy", lambda s, beta: s**beta),
]


@pytest.mark.parametrize("name, scorer, weight", STOCHASTIC)
def test_stochastic_large_beta_is_top_k_and_reproducible(name, scorer, weight):
    lp = random_log_probs(200, 8, 10, seed=7)
    top = select(scorer, lp, 10).indices
    assert set(select(name, lp, 10, generator=torch.Generator().manual_seed(0), beta=1e6).indices) == set(top)
    a = select(name, lp, 10, generator=torch.Generator().manual_seed(1))
    assert a == select(name, lp, 10, generator=torch.Generator().manual_seed(1))
    assert set(a.indices) != set(top)  # beta = 1 is a real sample, not top-k
    assert len(set(a.indices)) == 10
    assert a.scores == score(scorer, lp)[a.indices].tolist()


@pytest.mark.parametrize("name, scorer, weight", STOCHASTIC)
@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_stochastic_samples_in_proportion_to_their_weight(name, scorer, weight, beta):
    # point 0: samples disagree (BALD 0.64, entropy 0.69); point 1: they nearly agree (BALD 0.04, entropy 0.42)
    pool = torch.tensor([[[0.99, 0.01], [0.01, 0.99]], [[0.95, 0.05], [0.75, 0.25]]], dtype=torch.float64).log()
    w0, w1 = (weight(s, beta) for s in score(scorer, pool).tolist())
    firsts = [select(name, pool, 1, generator=torch.Generator().manual_seed(s), beta=beta).indices[0]
              for s in range(4000)]
    assert firsts.count(0) / 4000 == pytest.approx(w0 / (w0 + w1), abs=0.025)  # >= 3 binomial standard errors


@pytest.mark.parametrize("name, scorer, weight", STOCHASTIC)
def test_stochastic_second_pick_follows_sampling_without_replacement(name, scorer, weight):
    """Plackett-Luce: P(first i, then j) = w_i / W * w_j / (W - w_i), for every ordered pair."""
    pool = torch.tensor([[[0.99, 0.01], [0.01, 0.99]], [[0.95, 0.05], [0.75, 0.25]], [[0.9, 0.1], [0.4, 0.6]]],
                        dtype=torch.float64).log()
    w = [weight(s, 1.0) for s in score(scorer, pool).tolist()]
    draws = 6000
    pairs = [tuple(select(name, pool, 2, generator=torch.Generator().manual_seed(s)).indices) for s in range(draws)]
    for i, j in itertools.permutations(range(3), 2):
        expected = w[i] / sum(w) * w[j] / (sum(w) - w[i])
        assert pairs.count((i, j)) / draws == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / draws))


@pytest.mark.parametrize("name", [name for name, _, _ in STOCHASTIC])
@pytest.mark.parametrize("beta", [-1.0, math.inf, math.nan])
def test_stochastic_rejects_a_beta_it_cannot_honour(name, beta):
    with pytest.raises(Invalid, match=re.escape(f"beta = {beta!r}: must be a finite number >= 0.")) as raised:
        select(name, random_log_probs(5, 2, 3, seed=0), 2, beta=beta)
    assert isinstance(raised.value, ConfigError) and raised.value.field == "beta"
