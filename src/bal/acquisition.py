"""Acquisition functions: scorers, selectors and the one registry of strategy names.

A strategy looks at the candidates through :class:`PoolInputs`, and each :class:`Strategy`
declares which of its fields it needs, so the loop computes nothing a strategy does not use.
The main input is ``log_probs_N_K_C``: natural-log class probabilities for N pool points
under K Monte-Carlo dropout samples (consistent masks: sample k used the same mask for
every point). A *scorer* maps its inputs to ``scores_N`` (higher = more informative); a
*selector* returns a :class:`CandidateBatch`. Scorers become selectors by taking the top
``batch_size`` scores; equal scores, here and in BatchBALD's greedy steps, are ordered by a
random permutation drawn from the generator (index order without one).

Public API (``pool`` is a :class:`PoolInputs`, or just a ``log_probs_N_K_C`` tensor)::

    score(name, pool) -> scores_N
    select(name, pool, batch_size, *, generator=None, **options) -> CandidateBatch
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from bal.joint_entropy import CHUNK_ELEMENTS, exact_configurations, joint_entropies, sampled_configurations


@dataclass(frozen=True)
class CandidateBatch:
    """The chosen pool positions, best first, and the score each had when chosen."""

    indices: list[int]
    scores: list[float]


@dataclass(frozen=True)
class PoolInputs:
    """What a strategy may look at for the ``size`` candidates; the loop fills in only the fields
    that the strategy's :attr:`Strategy.inputs` name."""

    size: int
    log_probs_N_K_C: torch.Tensor | None = None
    target_log_probs_M_K_C: torch.Tensor | None = None  # M target inputs, under the candidates' K masks
    dropout_off_probs_N_C: torch.Tensor | None = None  # the deterministic prediction
    features_N_H: torch.Tensor | None = None  # the last hidden layer, dropout off

    @classmethod
    def of(cls, pool: "PoolInputs | torch.Tensor") -> "PoolInputs":
        """``pool`` itself, or a bare ``log_probs_N_K_C`` tensor wrapped."""
        return pool if isinstance(pool, PoolInputs) else cls(pool.shape[0], pool)


def _check_log_probs(log_probs_N_K_C: torch.Tensor) -> None:
    if log_probs_N_K_C.ndim != 3:
        raise ValueError(f"log_probs must have shape N x K x C, got {tuple(log_probs_N_K_C.shape)}.")
    if torch.isnan(log_probs_N_K_C).any() or (log_probs_N_K_C == math.inf).any():
        raise ValueError("log_probs contain NaN or +inf: the model's predictions are broken.")


def _tie_order(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The order in which equal scores are preferred: a random permutation, or index order."""
    order_N = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order_N.to(device)


def _probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Per-sample class probabilities in float64."""
    return log_probs_N_K_C.double().exp()


def _mean_probs(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """The predictive distribution p(y|x) = mean over the K samples, in float64."""
    k = log_probs_N_K_C.shape[1]
    return (torch.logsumexp(log_probs_N_K_C.double(), dim=1) - math.log(k)).exp()


def _entropy(probs_X_C: torch.Tensor) -> torch.Tensor:
    """Entropy in nats along the last dimension; 0 log 0 = 0."""
    return torch.special.entr(probs_X_C).sum(dim=-1)


def max_entropy(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Entropy of the predictive distribution, H[y|x]."""
    return _entropy(_mean_probs(log_probs_N_K_C))


def expected_entropy(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Mean over the K samples of each sample's predictive entropy, E_w H[y|x,w] (nats)."""
    return _entropy(_probs(log_probs_N_K_C)).mean(dim=1)


def bald(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Mutual information I[y; w | x] = H[mean prediction] - mean of the samples' entropies (nats).

    Clamped at 0: the true value is never negative, and float rounding must not make it so.
    """
    return (max_entropy(log_probs_N_K_C) - expected_entropy(log_probs_N_K_C)).clamp_min(0.0)


def margin(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Minus the gap between the two most probable classes of the predictive distribution."""
    top2_N_2 = _mean_probs(log_probs_N_K_C).topk(2, dim=1).values
    return top2_N_2[:, 1] - top2_N_2[:, 0]


def least_confidence(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """One minus the probability of the most probable class."""
    return 1.0 - _mean_probs(log_probs_N_K_C).max(dim=1).values


def variation_ratios(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """One minus the fraction of the K samples that vote for the modal class (Freeman 1965)."""
    n, k, c = log_probs_N_K_C.shape
    votes_N_K = log_probs_N_K_C.argmax(dim=2)
    counts_N_C = torch.zeros(n, c, dtype=torch.float64, device=votes_N_K.device)
    counts_N_C.scatter_add_(1, votes_N_K, torch.ones(n, k, dtype=torch.float64, device=votes_N_K.device))
    return 1.0 - counts_N_C.max(dim=1).values / k


def mean_std(log_probs_N_K_C: torch.Tensor) -> torch.Tensor:
    """Standard deviation of each class probability over the K samples, averaged over classes."""
    return _probs(log_probs_N_K_C).std(dim=1, correction=0).mean(dim=1)


EPIG_CHUNK_ELEMENTS = 2**23  # float64 elements of one chunk's joint predictive tables: 64 MiB


def epig_scores(log_probs_N_K_C: torch.Tensor, target_log_probs_M_K_C: torch.Tensor,
                chunk_elements: int = EPIG_CHUNK_ELEMENTS) -> torch.Tensor:
    """Expected predictive information gain (Bickford Smith et al. 2023), nats, float64: for each
    candidate x, the mean over the M target inputs x* of I(y; y* | x, x*).

    Both tensors come from the same K consistent MC samples, which make the joint predictive
    p(y, y*) = (1/K) sum_k p(y | x, w_k) p(y* | x*, w_k) one matrix product over K; then
    I = H[p(y)] + H[p(y*)] - H[p(y, y*)]. Candidates go in chunks, so extra memory stays at
    ``chunk_elements`` float64 numbers whatever N.
    """
    n, k, c = log_probs_N_K_C.shape
    m, k_targets, c_targets = target_log_probs_M_K_C.shape
    if m == 0:
        raise ValueError("epig needs at least one target input, got 0.")
    if k_targets != k:
        raise ValueError(f"epig needs the targets predicted with the candidates' K = {k} masks, got K = {k_targets}.")
    probs_K_MC = target_log_probs_M_K_C.double().exp().permute(1, 0, 2).reshape(k, m * c_targets) / k
    target_entropy = max_entropy(target_log_probs_M_K_C).mean()
    chunk = max(1, chunk_elements // (c * m * c_targets))
    scores_N = torch.empty(n, dtype=torch.float64, device=log_probs_N_K_C.device)
    for start in range(0, n, chunk):
        log_probs_X_K_C = log_probs_N_K_C[start : start + chunk]
        probs_XC_K = log_probs_X_K_C.double().exp().transpose(1, 2).reshape(-1, k)
        joint_XC_MC = probs_XC_K @ probs_K_MC  # p(y, y*) for each candidate and target
        terms_X_C_M_C = torch.special.entr(joint_XC_MC, out=joint_XC_MC).view(-1, c, m, c_targets)
        joint_entropy_X = terms_X_C_M_C.sum(dim=(1, 3)).mean(dim=1)
        scores_N[start : start + chunk] = max_entropy(log_probs_X_K_C) + target_entropy - joint_entropy_X
    return scores_N.clamp_min(0.0)


def top_k(scores_N: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> CandidateBatch:
    """The ``batch_size`` highest scores; equal scores are ordered by a random permutation."""
    if not torch.isfinite(scores_N).all():
        raise ValueError("acquisition scores contain NaN or inf: refusing to pick arbitrarily.")
    perm_N = _tie_order(scores_N.shape[0], generator, scores_N.device)
    order_N = torch.sort(scores_N[perm_N], descending=True, stable=True).indices
    chosen_B = perm_N[order_N[:batch_size]]
    return CandidateBatch(chosen_B.tolist(), scores_N[chosen_B].tolist())


def random(n: int, batch_size: int, generator: torch.Generator | None) -> CandidateBatch:
    """Uniformly random points of the ``n`` candidates, without replacement; the scores are the
    uniform draws. It needs no predictions."""
    draws_N = torch.rand(n, generator=generator, dtype=torch.float64)
    return top_k(draws_N, batch_size, None)


def batchbald(
    log_probs_N_K_C: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None,
    max_configurations: int = 10_000,
) -> CandidateBatch:
    """BatchBALD (Kirsch et al. 2019): greedily add the point that maximises I[y_1..y_n; w].

    The joint entropy is exact while C^n <= ``max_configurations`` and estimated from that many
    sampled configurations beyond. The scores are the batch's joint mutual information after each
    addition, which K equally weighted samples cap at log K (:func:`past_ceiling`). Needs K >= 2
    *consistent* MC-dropout samples (one mask per k for the whole pool): the product over points of
    p(y_i | w_k) is only a joint likelihood if w_k is the same for all. Equal gains are ordered by a
    random permutation from ``generator``, as in :func:`top_k`.
    """
    n, k, c = log_probs_N_K_C.shape
    tie_order_N = _tie_order(n, generator, log_probs_N_K_C.device)
    probs_N_C_K = log_probs_N_K_C.double().exp().transpose(1, 2).contiguous()
    conditional_entropy_N = expected_entropy(log_probs_N_K_C)
    available_N = torch.ones(n, dtype=torch.bool, device=probs_N_C_K.device)
    probs_K_M, frequency_M = torch.ones(k, 1, dtype=torch.float64, device=probs_N_C_K.device), None
    workspace = torch.empty(CHUNK_ELEMENTS, dtype=torch.float64, device=probs_N_C_K.device)  # shared by the steps
    chosen, scores, conditional_sum = [], [], 0.0
    for size in range(1, batch_size + 1):
        sampled = c**size > max_configurations
        if sampled:
            probs_K_M, frequency_M = sampled_configurations(
                probs_N_C_K[chosen].transpose(1, 2), max_configurations, generator
            )
        joint_entropy_N = joint_entropies(probs_K_M, probs_N_C_K, frequency_M, workspace=workspace)
        mutual_information_N = joint_entropy_N - conditional_entropy_N - conditional_sum
        if not torch.isfinite(mutual_information_N[available_N]).all():
            raise ValueError("batchbald scores contain NaN or inf: refusing to pick arbitrarily.")
        mutual_information_N[~available_N] = -torch.inf
        best = int(tie_order_N[mutual_information_N[tie_order_N].argmax()])  # argmax: the first maximum
        chosen.append(best)
        scores.append(float(mutual_information_N[best]))
        available_N[best] = False
        conditional_sum += float(conditional_entropy_N[best])
        if not sampled:
            probs_K_M = exact_configurations(probs_K_M, probs_N_C_K[best].T)
    return CandidateBatch(chosen, scores)


def _gumbel_top_k(
    log_weights_N: torch.Tensor, scores_N: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> CandidateBatch:
    """A sample of ``batch_size`` points without replacement, with probability proportional to
    exp(``log_weights_N``) (Gumbel-top-k: the top of log weight + Gumbel noise). Scores: ``scores_N``."""
    uniform_N = torch.rand(log_weights_N.shape, generator=generator, dtype=torch.float64).to(log_weights_N.device)
    gumbel_N = -torch.log(-torch.log(uniform_N.clamp(1e-300, 1 - 1e-16)))
    batch = top_k(log_weights_N + gumbel_N, batch_size, None)
    return CandidateBatch(batch.indices, scores_N[batch.indices].tolist())


def _check_beta(name: str, beta: float) -> None:
    if not 0 <= beta < math.inf:
        raise ValueError(f"{name} needs a finite beta >= 0, got {beta}.")


def power_bald(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    """Stochastic (power) BALD (Kirsch et al. 2023): sample without replacement with p ∝ BALD^beta.

    beta -> infinity approaches top-k BALD; beta = 0 is uniform random. Scores are BALD's.
    """
    _check_beta("power_bald", beta)
    bald_N = bald(log_probs_N_K_C)
    return _gumbel_top_k(beta * torch.log(bald_N.clamp_min(1e-300)), bald_N, batch_size, generator)


def softmax_bald(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    """Softmax BALD (Kirsch et al. 2023): sample without replacement with p ∝ exp(beta * BALD).

    Flatter than power BALD for small scores (a point with BALD 0 keeps weight 1). Scores are BALD's.
    """
    _check_beta("softmax_bald", beta)
    bald_N = bald(log_probs_N_K_C)
    return _gumbel_top_k(beta * bald_N, bald_N, batch_size, generator)


def power_entropy(
    log_probs_N_K_C: torch.Tensor, batch_size: int, generator: torch.Generator | None, beta: float = 1.0
) -> CandidateBatch:
    """Power entropy (Kirsch et al. 2023): sample without replacement with p ∝ H[y|x]^beta.

    Needs no MC samples (K = 1 works). Scores are the predictive entropies.
    """
    _check_beta("power_entropy", beta)
    entropy_N = max_entropy(log_probs_N_K_C)
    return _gumbel_top_k(beta * torch.log(entropy_N.clamp_min(1e-300)), entropy_N, batch_size, generator)


def kmeans_plus_plus(embeddings_N_E: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                     chunk: int = 4096) -> list[int]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), as BADGE uses it: the first point has the
    largest norm, each next one is drawn with probability proportional to its squared distance to
    the nearest point chosen so far, so a chosen point (distance 0) is never drawn again while
    others remain. Distances are taken as differences, ``chunk`` rows at a time (no cancellation,
    no N x E copy)."""
    chosen = [int(torch.linalg.vecdot(embeddings_N_E, embeddings_N_E).argmax())]
    nearest_N = torch.full((len(embeddings_N_E),), torch.inf, dtype=torch.float64)
    for _ in range(1, batch_size):
        centre_E = embeddings_N_E[chosen[-1]]
        distance_N = torch.cat([(embeddings_N_E[start : start + chunk] - centre_E).pow(2).sum(dim=1)
                                for start in range(0, len(embeddings_N_E), chunk)]).double()
        nearest_N = torch.minimum(nearest_N, distance_N)
        if nearest_N.sum() > 0:
            chosen.append(int(torch.multinomial(nearest_N, 1, generator=generator)))
        else:  # every remaining point coincides with a chosen one: any of them
            remaining_R = torch.ones(len(nearest_N), dtype=torch.bool)
            remaining_R[chosen] = False
            options_R = remaining_R.nonzero().squeeze(1)
            chosen.append(int(options_R[torch.randint(len(options_R), (1,), generator=generator)]))
    return chosen


def gradient_embeddings(dropout_off_probs_N_C: torch.Tensor, features_N_H: torch.Tensor) -> torch.Tensor:
    """BADGE's embedding (Ash et al. 2020): the gradient of the cross-entropy with respect to the last
    layer's weights under the model's own predicted label, (p(x) - e_yhat) outer h(x), as ``N x (C*H)``."""
    residual_N_C = dropout_off_probs_N_C.clone()
    residual_N_C[torch.arange(len(residual_N_C)), residual_N_C.argmax(dim=1)] -= 1.0
    return (residual_N_C[:, :, None] * features_N_H[:, None, :]).flatten(1)


def badge(
    dropout_off_probs_N_C: torch.Tensor, features_N_H: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> CandidateBatch:
    """BADGE: k-means++ seeding on the gradient embeddings, so the batch is both uncertain (long
    gradients) and diverse (far apart). Scores: the embeddings' norms."""
    embeddings_N_E = gradient_embeddings(dropout_off_probs_N_C, features_N_H)
    chosen = kmeans_plus_plus(embeddings_N_E, batch_size, generator)
    return CandidateBatch(chosen, embeddings_N_E[chosen].norm(dim=1).tolist())


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: a scorer or a selector, called with the :class:`PoolInputs` fields that
    ``inputs`` names (positionally, in that order); a selector then gets ``batch_size``, the generator
    and its options."""

    name: str
    scorer: Callable[..., torch.Tensor] | None = None
    selector: Callable[..., CandidateBatch] | None = None
    inputs: tuple[str, ...] = ("log_probs_N_K_C",)
    needs_samples: bool = False  # meaningless with a single MC sample (K = 1): every score would be 0
    joint_scores: bool = False  # its scores are the batch's running joint mutual information (capped at log K)
    input_options: tuple[str, ...] = ()  # its options that say how to compute its inputs (the loop's, not its own)

    def split_options(self, options: dict) -> tuple[dict, dict]:
        """``options.<strategy>`` as (those that compute its inputs, those its function takes)."""
        return ({k: v for k, v in options.items() if k in self.input_options},
                {k: v for k, v in options.items() if k not in self.input_options})


REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("random", selector=random, inputs=("size",)),
        Strategy("max_entropy", scorer=max_entropy),
        Strategy("margin", scorer=margin),
        Strategy("least_confidence", scorer=least_confidence),
        Strategy("variation_ratios", scorer=variation_ratios, needs_samples=True),
        Strategy("mean_std", scorer=mean_std, needs_samples=True),
        Strategy("bald", scorer=bald, needs_samples=True),
        Strategy("batchbald", selector=batchbald, needs_samples=True, joint_scores=True),
        Strategy("power_bald", selector=power_bald, needs_samples=True),
        Strategy("softmax_bald", selector=softmax_bald, needs_samples=True),
        Strategy("power_entropy", selector=power_entropy),
        Strategy("epig", scorer=epig_scores, inputs=("log_probs_N_K_C", "target_log_probs_M_K_C"), needs_samples=True,
                 input_options=("targets",)),
        Strategy("badge", selector=badge, inputs=("dropout_off_probs_N_C", "features_N_H")),
    ]
}


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``; an unknown name lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(REGISTRY)}.") from None


def _inputs(strategy: Strategy, pool: PoolInputs) -> list:
    """The checked inputs that ``strategy`` declares, in its order."""
    values = []
    for name in strategy.inputs:
        value = getattr(pool, name)
        if value is None:
            raise ValueError(f"strategy {strategy.name!r} needs {name}, which the pool inputs lack.")
        if name in ("log_probs_N_K_C", "target_log_probs_M_K_C"):
            _check_log_probs(value)
            if strategy.needs_samples and value.shape[1] < 2:
                raise ValueError(f"strategy {strategy.name!r} needs at least 2 MC samples, got K = {value.shape[1]}: "
                                 "with one sample every score is 0.")
        values.append(value)
    return values


def score(name: str, pool: PoolInputs | torch.Tensor) -> torch.Tensor:
    """Per-point informativeness ``scores_N`` (float64, higher = more informative)."""
    strategy = get_strategy(name)
    if strategy.scorer is None:
        raise ValueError(f"strategy {name!r} selects a batch and has no per-point score; use select().")
    return strategy.scorer(*_inputs(strategy, PoolInputs.of(pool)))


def select(
    name: str,
    pool: PoolInputs | torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    **options,
) -> CandidateBatch:
    """Choose ``batch_size`` of the pool's candidates with strategy ``name``."""
    strategy = get_strategy(name)
    pool = PoolInputs.of(pool)
    inputs = _inputs(strategy, pool)
    if not 1 <= batch_size <= pool.size:
        raise ValueError(f"batch_size must be between 1 and the pool size {pool.size}, got {batch_size}.")
    if strategy.selector is not None:
        return strategy.selector(*inputs, batch_size, generator, **options)
    if options:
        raise ValueError(f"strategy {name!r} takes no options, got {sorted(options)}.")
    return top_k(strategy.scorer(*inputs), batch_size, generator)


CEILING_FRACTION = 0.9


def past_ceiling(name: str, scores: list[float], k: int) -> list[bool]:
    """For each pick of a batch, whether the batch's joint mutual information had passed
    ``CEILING_FRACTION`` x log K.

    With K equally weighted MC samples, I[y_1..y_n; w] <= H[w] = log K, so near the ceiling the
    greedy gains are Monte-Carlo noise: more samples K lift it, more sampled configurations do not.
    All False for strategies whose scores are not a joint mutual information.
    """
    if not get_strategy(name).joint_scores:
        return [False] * len(scores)
    return [s > CEILING_FRACTION * math.log(k) for s in scores]
