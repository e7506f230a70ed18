"""EPIG (Bickford Smith et al. 2023) and BADGE (Ash et al. 2020) against cases with known answers."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bal.strategies import PoolInputs, score, select
from bal.strategies.badge import gradient_embeddings, kmeans_plus_plus
from bal.information import epig as epig_scores


def random_log_probs(n, k, c, seed, sharpness=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * sharpness, dim=-1)


def brute_force_epig(log_probs_N_K_C, target_log_probs_M_K_C):
    """The definition, one loop per index: mean over targets of H[y] + H[y*] - H[y, y*]."""
    p, q = log_probs_N_K_C.exp().tolist(), target_log_probs_M_K_C.exp().tolist()
    k, c = len(p[0]), len(p[0][0])

    def h(probs):
        return -sum(x * math.log(x) for x in probs if x > 0)

    scores = []
    for pn in p:
        total = 0.0
        for qm in q:
            joint = [sum(pn[kk][a] * qm[kk][b] for kk in range(k)) / k for a in range(c) for b in range(c)]
            marginal_y = [sum(pn[kk][a] for kk in range(k)) / k for a in range(c)]
            marginal_t = [sum(qm[kk][b] for kk in range(k)) / k for b in range(c)]
            total += h(marginal_y) + h(marginal_t) - h(joint)
        scores.append(total / len(q))
    return scores


def test_epig_equals_the_definition_computed_by_brute_force():
    lp, targets = random_log_probs(7, 5, 3, seed=0), random_log_probs(4, 5, 3, seed=1)
    fast = epig_scores(lp, targets, chunk_elements=20)  # several chunks
    assert fast.dtype == torch.float64
    assert fast.tolist() == pytest.approx(brute_force_epig(lp, targets), abs=1e-12)


def test_a_target_every_sample_agrees_on_contributes_nothing():
    lp = random_log_probs(6, 4, 3, seed=2)
    agreeing = torch.tensor([[0.6, 0.3, 0.1]] * 4, dtype=torch.float64).log()[None]  # M = 1, same for every k
    assert epig_scores(lp, agreeing).tolist() == pytest.approx([0.0] * 6, abs=1e-12)
    informative = random_log_probs(1, 4, 3, seed=3)
    both = torch.cat([agreeing, informative])
    assert epig_scores(lp, both).tolist() == pytest.approx((epig_scores(lp, informative) / 2).tolist(), abs=1e-12)


def test_epig_of_a_label_that_decides_the_target_is_log_2():
    # K = 2 samples that confidently disagree on the candidate and on the target: y determines y*
    sure = torch.tensor([[[1.0, 1e-300], [1e-300, 1.0]]], dtype=torch.float64).log()
    flipped = sure.flip(-1)
    assert epig_scores(sure, sure).item() == pytest.approx(math.log(2), abs=1e-12)
    assert epig_scores(sure, flipped).item() == pytest.approx(math.log(2), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(2, 6), c=st.integers(2, 4), m=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_epig_is_between_zero_and_bald_and_ignores_the_order_of_samples_and_targets(n, k, c, m, seed):
    lp, targets = random_log_probs(n, k, c, seed), random_log_probs(m, k, c, seed + 1)
    epig = epig_scores(lp, targets)
    assert (epig >= 0).all() and (epig <= score("bald", lp) + 1e-12).all()  # y and y* meet only through the parameters
    g = torch.Generator().manual_seed(seed)
    perm_k, perm_m = torch.randperm(k, generator=g), torch.randperm(m, generator=g)
    assert torch.allclose(epig_scores(lp[:, perm_k], targets[:, perm_k]), epig, atol=1e-12)
    assert torch.allclose(epig_scores(lp, targets[perm_m]), epig, atol=1e-12)


def test_epig_refuses_what_it_cannot_estimate():
    lp = random_log_probs(5, 4, 3, seed=4)
    pool = PoolInputs(5, lp[:, :1], target_log_probs_M_K_C=random_log_probs(2, 1, 3, seed=5))
    with pytest.raises(ValueError, match="strategy 'epig' needs at least 2 MC samples, got K = 1"):
        select("epig", pool, 1)
    with pytest.raises(ValueError, match="epig needs at least one target input, got 0"):
        select("epig", PoolInputs(5, lp, target_log_probs_M_K_C=lp[:0]), 1)
    with pytest.raises(ValueError, match="strategy 'epig' needs target_log_probs_M_K_C"):
        select("epig", lp, 1)
    with pytest.raises(ValueError, match="targets predicted with the candidates' K = 4 masks, got K = 3"):
        epig_scores(lp, random_log_probs(2, 3, 3, seed=6))


def test_gradient_embedding_under_the_predicted_label():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    features = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    expected = torch.tensor([[-0.3 * 1, -0.3 * 2, 0.3 * 1, 0.3 * 2], [0.2 * 3, 0.0, -0.2 * 3, 0.0]])
    assert torch.allclose(gradient_embeddings(probs, features), expected)


def clusters(b, per, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(b, 6, generator=g) * 100
    return (centres.repeat_interleave(per, 0) + torch.randn(b * per, 6, generator=g) * 1e-3), torch.arange(b).repeat_interleave(per)


def test_kmeans_plus_plus_starts_at_the_longest_embedding_and_covers_every_cluster():
    embeddings, cluster = clusters(5, 8, seed=0)
    longest = int(embeddings.norm(dim=1).argmax())
    for seed in range(5):
        chosen = kmeans_plus_plus(embeddings, 5, torch.Generator().manual_seed(seed))
        assert chosen[0] == longest
        assert sorted(cluster[chosen].tolist()) == [0, 1, 2, 3, 4]


def test_kmeans_plus_plus_never_repeats_a_point_while_others_remain():
    embeddings = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 2.0]] * 2)  # duplicates: distance 0 to a chosen copy
    for seed in range(10):
        chosen = kmeans_plus_plus(embeddings, 5, torch.Generator().manual_seed(seed))
        assert sorted(chosen) == [0, 1, 2, 3, 4] and chosen[0] in (3, 4)
    g = torch.Generator().manual_seed(0)
    centre = torch.randn(1280, generator=g) * 30  # long embeddings a hair apart: ||a||^2 + ||b||^2 - 2ab would be noise
    close = centre + 1e-4 * torch.randn(50, 1280, generator=g)
    close[7] = centre * 1.0001
    for seed in range(10):
        chosen = kmeans_plus_plus(close, 10, torch.Generator().manual_seed(seed), chunk=16)
        assert chosen[0] == 7 and len(set(chosen)) == 10


def test_kmeans_plus_plus_draws_each_next_point_with_probability_proportional_to_its_squared_distance():
    """The D^2 law of k-means++: on a line at 3, 2, 1, 0 the first pick is the longest (3); the second
    is 2, 1 or 0 with probability 1, 4, 9 / 14 (squared distances to 3); the third with probability
    proportional to the squared distance to the nearer of the two chosen. A farthest-first traversal
    (always 0, then 2), a uniform draw or a draw by distance (1, 2, 3 / 6) each miss one of these frequencies by > 10 standard errors."""
    embeddings = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    d2_to_first = [0.0, 1.0, 4.0, 9.0]
    draws = 4000
    picks = [kmeans_plus_plus(embeddings, 3, torch.Generator().manual_seed(s)) for s in range(draws)]
    assert all(chosen[0] == 0 and len(set(chosen)) == 3 for chosen in picks)

    def within_5_standard_errors(count, expected):
        return count / draws == pytest.approx(expected, abs=5 * math.sqrt(expected * (1 - expected) / draws))

    seconds = [chosen[1] for chosen in picks]
    for j in (1, 2, 3):
        assert within_5_standard_errors(seconds.count(j), d2_to_first[j] / sum(d2_to_first)), j
    pairs = [tuple(chosen[1:]) for chosen in picks]
    for j, l in itertools.permutations((1, 2, 3), 2):
        nearest = [min(d2_to_first[i], (i - j) ** 2) for i in range(4)]  # squared distance to the nearer of 0, j
        expected = d2_to_first[j] / sum(d2_to_first) * nearest[l] / sum(nearest)
        assert within_5_standard_errors(pairs.count((j, l)), expected), (j, l)


def test_badge_selects_through_the_registry_from_dropout_off_inputs():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(30, 4, generator=g) * 3, dim=-1)
    features = torch.relu(torch.randn(30, 8, generator=g))
    pool = PoolInputs(30, dropout_off_probs_N_C=probs, features_N_H=features)
    batch = select("badge", pool, 6, generator=torch.Generator().manual_seed(1))
    norms = gradient_embeddings(probs, features).norm(dim=1)
    assert batch.indices[0] == int(norms.argmax()) and len(set(batch.indices)) == 6
    assert batch.scores == pytest.approx(norms[batch.indices].tolist())
    assert batch == select("badge", pool, 6, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="strategy 'badge' needs dropout_off_probs_N_C"):
        select("badge", random_log_probs(30, 2, 4, seed=0), 2)
