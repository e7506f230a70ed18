import itertools
import math

import pytest
import torch

from bal.acquisition import score, select
from bal.joint_entropy import exact_configurations, joint_entropies, sampled_configurations


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


@pytest.mark.parametrize("name", [name for name, _, _ in STOCHASTIC])
def test_stochastic_rejects_negative_beta(name):
    with pytest.raises(ValueError, match="beta >= 0"):
        select(name, random_log_probs(5, 2, 3, seed=0), 2, beta=-1.0)
