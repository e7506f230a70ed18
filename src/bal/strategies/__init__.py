"""Acquisition strategies: one module per strategy name, discovered from this package.

A module ``bal/strategies/<name>.py`` defines ``STRATEGY``, a :class:`Strategy`: its scorer or
selector, the :class:`PoolInputs` fields it takes, its ``options.<name>`` dataclass and its colour
and marker in figures. The file name is the strategy name, so adding a strategy is one new file
(plus its ``options`` entry in params.yaml and a test), and a run depends on this package's base,
the shared maths (bal.information) and its own module only.

The main input is ``log_probs_N_K_C``: natural-log class probabilities for N pool points under K
Monte-Carlo dropout samples (consistent masks: sample k used the same mask for every point). A
*scorer* maps its inputs to ``scores_N`` (higher = more informative); a *selector* returns a
:class:`CandidateBatch`. Scorers become selectors by taking the top ``batch_size`` scores; equal
scores, here and in BatchBALD's greedy steps, are ordered by a random permutation drawn from the
generator (index order without one).

Public API (``pool`` is a :class:`PoolInputs`, or just a ``log_probs_N_K_C`` tensor)::

    names() -> every strategy name;  get(name) -> Strategy
    score(name, pool) -> scores_N
    select(name, pool, batch_size, *, generator=None, **options) -> CandidateBatch
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from bal.errors import require
from bal.information import check_log_probs

# Never ``import random`` here: importing the strategy module bal.strategies.random binds that name in this
# package's namespace, over the standard library module.


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


@dataclass(frozen=True)
class NoOptions:
    """A strategy without settings: ``{}`` in params.yaml."""


@dataclass(frozen=True)
class BetaOptions:
    """The sampling temperature of the stochastic strategies (power / softmax BALD, power entropy)."""

    beta: float = 1.0

    def __post_init__(self):
        require(0 <= self.beta < math.inf, "beta", self.beta, "must be a finite number >= 0")


@dataclass(frozen=True)
class TargetOptions:
    """EPIG's: how many target inputs the loop draws each round (an input option: it computes the inputs)."""

    targets: int = 100

    def __post_init__(self):
        require(self.targets >= 1, "targets", self.targets, "must be at least 1")


class Run(NamedTuple):
    """What a strategy's :attr:`Strategy.check_run` may need to know of one run before it starts."""

    dataset: str
    pool: int  # pool points
    budget: int
    budget_key: str  # the params key that sets the budget, for messages
    mc_samples: int
    classes: int
    target_set_size: int = 0  # the inputs of the dataset's target set (0: it has none)


@dataclass(frozen=True)
class Strategy:
    """A strategy: a scorer or a selector, called with the :class:`PoolInputs` fields that ``inputs``
    names (positionally, in that order); a selector then gets ``batch_size``, the generator and its
    options. ``name`` is its module's name (filled in by :func:`get`)."""

    colour: str  # in every figure, and in .dvc/plots/strategies.json
    marker: str
    scorer: Callable[..., torch.Tensor] | None = None
    selector: Callable[..., CandidateBatch] | None = None
    inputs: tuple[str, ...] = ("log_probs_N_K_C",)
    needs_samples: bool = False  # meaningless with a single MC sample (K = 1): every score would be 0
    joint_scores: bool = False  # its scores are the batch's running joint mutual information (capped at log K)
    options: type = NoOptions  # the dataclass of options.<name>; it checks its own values
    input_options: tuple[str, ...] = ()  # its options that say how to compute its inputs (the loop's, not its own)
    check_run: Callable[[object, Run], None] | None = None  # (options, run) -> raises bal.errors.ConfigError if they clash
    target_set: bool = False  # its target inputs come from the dataset's target set where it has one, else the pool
    name: str = ""

    def split_options(self, options: dict) -> tuple[dict, dict]:
        """``options.<strategy>`` as (those that compute its inputs, those its function takes)."""
        return ({k: v for k, v in options.items() if k in self.input_options},
                {k: v for k, v in options.items() if k not in self.input_options})


def names() -> list[str]:
    """Every strategy name: the modules of this package, found without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> Strategy:
    """The strategy called ``name``, imported from its module alone; an unknown name lists the known ones."""
    if name not in names():
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(names())}.")
    return dataclasses.replace(importlib.import_module(f"{__name__}.{name}").STRATEGY, name=name)


def tie_order(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The order in which equal scores are preferred: a random permutation, or index order."""
    order_N = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return order_N.to(device)


def top_k(scores_N: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> CandidateBatch:
    """The ``batch_size`` highest scores; equal scores are ordered by a random permutation."""
    if not torch.isfinite(scores_N).all():
        raise ValueError("acquisition scores contain NaN or inf: refusing to pick arbitrarily.")
    perm_N = tie_order(scores_N.shape[0], generator, scores_N.device)
    order_N = torch.sort(scores_N[perm_N], descending=True, stable=True).indices
    chosen_B = perm_N[order_N[:batch_size]]
    return CandidateBatch(chosen_B.tolist(), scores_N[chosen_B].tolist())


def sample_proportional(
    log_weights_N: torch.Tensor, scores_N: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> CandidateBatch:
    """A sample of ``batch_size`` points without replacement, with probability proportional to
    exp(``log_weights_N``) (Gumbel-top-k: the top of log weight + Gumbel noise). Scores: ``scores_N``."""
    uniform_N = torch.rand(log_weights_N.shape, generator=generator, dtype=torch.float64).to(log_weights_N.device)
    gumbel_N = -torch.log(-torch.log(uniform_N.clamp(1e-300, 1 - 1e-16)))
    batch = top_k(log_weights_N + gumbel_N, batch_size, None)
    return CandidateBatch(batch.indices, scores_N[batch.indices].tolist())


def sample_power(scores_N: torch.Tensor, beta: float, batch_size: int, generator: torch.Generator | None) -> CandidateBatch:
    """A sample of ``batch_size`` points without replacement with probability proportional to
    ``scores_N`` ** beta (power acquisition, Kirsch et al. 2023); each keeps its score."""
    BetaOptions(beta)  # refuses a negative or infinite beta
    return sample_proportional(beta * torch.log(scores_N.clamp_min(1e-300)), scores_N, batch_size, generator)


def _inputs(strategy: Strategy, pool: PoolInputs) -> list:
    """The checked inputs that ``strategy`` declares, in its order."""
    values = []
    for name in strategy.inputs:
        value = getattr(pool, name)
        if value is None:
            raise ValueError(f"strategy {strategy.name!r} needs {name}, which the pool inputs lack.")
        if name in ("log_probs_N_K_C", "target_log_probs_M_K_C"):
            check_log_probs(value)
            if strategy.needs_samples and value.shape[1] < 2:
                raise ValueError(f"strategy {strategy.name!r} needs at least 2 MC samples, got K = {value.shape[1]}: "
                                 "with one sample every score is 0.")
        values.append(value)
    return values


def score(name: str, pool: PoolInputs | torch.Tensor) -> torch.Tensor:
    """Per-point informativeness ``scores_N`` (float64, higher = more informative)."""
    strategy = get(name)
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
    strategy = get(name)
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


def past_ceiling(strategy: Strategy, scores: list[float], k: int) -> list[bool]:
    """For each pick of a batch, whether the batch's joint mutual information had passed
    ``CEILING_FRACTION`` x log K.

    With K equally weighted MC samples, I[y_1..y_n; w] <= H[w] = log K, so near the ceiling the
    greedy gains are Monte-Carlo noise: more samples K lift it, more sampled configurations do not.
    All False for strategies whose scores are not a joint mutual information.
    """
    if not strategy.joint_scores:
        return [False] * len(scores)
    return [s > CEILING_FRACTION * math.log(k) for s in scores]
