"""The active-learning loop: train -> evaluate -> score -> select -> label, round after round.

Every random choice of round r (model initialisation, minibatches, dropout, pool subset,
MC masks, tie-breaking) is seeded from (seed, r) alone, so a run is a pure function of its
seed and its labelled set: a run resumed from the rounds already finished continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

from bal.errors import DataError
from bal.prepared import Split
from bal.strategies import PoolInputs, Strategy, get, select
from bal.inference import evaluate, predict
from bal.models import INITS, McDropoutNet


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 300  # at least this many gradient steps ...
    epochs: int = 0  # ... and at least this many passes over the labelled set
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0  # total L2 strength; Adam gets weight_decay / n_labelled
    weight_decay_on: str = "all"  # or "hidden_dense": the head's first dense layer's weights only (Gal et al.'s code)
    precision: str = "float32"  # or "bfloat16": autocast for the forward pass (fast on CPUs with AVX512-BF16)
    eval_every: int = 0  # steps between validation checks, keeping the best checkpoint (0: no checks)
    patience: int = 0  # stop after this many checks without improvement (0: train all steps)


@dataclass(frozen=True)
class LoopSettings:
    strategy: str
    seed: int
    initial: tuple[int, ...]
    acquisition_size: int = 10
    budget: int = 1000
    mc_samples: int = 20  # masks for scoring the pool
    test_mc_samples: int | None = None  # masks for the test-set prediction (None: mc_samples)
    pool_subset: int | None = None  # score about this many pool points a round, drawn at random (None: all)
    train: TrainSettings = field(default_factory=TrainSettings)
    strategy_options: dict = field(default_factory=dict)
    init: str = "torch"  # or "keras" (Glorot-uniform weights, zero biases: models.INITS)
    evaluate_on: str = "test"  # or "dev": the split each round's model is evaluated on

    @property
    def test_samples(self) -> int:
        return self.test_mc_samples or self.mc_samples


@dataclass(frozen=True)
class Round:
    """One finished round: the model trained on ``n_labelled`` labels, evaluated on the
    ``evaluate_on`` split (MC-averaged, and with dropout off), then what it acquired."""

    index: int  # 0 for the initial labelled set
    n_labelled: int
    accuracy: float
    nll: float
    accuracy_dropout_off: float
    train_seconds: float
    eval_seconds: float
    score_seconds: float
    select_seconds: float
    acquired: list[int]
    scores: list[float]


def pool_subset(
    candidates_P: torch.Tensor, original_P: torch.Tensor, originals: int, generator: torch.Generator
) -> torch.Tensor:
    """The candidates that are copies of ``originals`` originals drawn at random, in pool order.

    Copies of one original are scored together, so that on Repeated-MNIST a batch can meet the
    duplicates BatchBALD is meant to avoid; without copies this is ``originals`` random candidates.
    """
    distinct_G = torch.unique(original_P)
    if originals >= len(distinct_G):
        return candidates_P
    chosen_G = distinct_G[torch.randperm(len(distinct_G), generator=generator)[:originals]]
    return candidates_P[torch.isin(original_P, chosen_G)]


def pool_inputs(
    model: McDropoutNet, pool_x: torch.Tensor, candidates_P: torch.Tensor, unlabelled_U: torch.Tensor,
    strategy: Strategy, input_options: dict, settings: LoopSettings, generator: torch.Generator,
    target_x: torch.Tensor | None = None,
) -> PoolInputs:
    """The candidates' :class:`PoolInputs`, with only the fields that ``strategy.inputs`` name.

    EPIG's targets are ``input_options["targets"]`` inputs drawn at random, predicted in one call with
    the candidates, so both see the same K masks: from the dataset's target set ``target_x`` if the
    strategy takes it (``strategy.target_set``) and there is one, else from the whole unlabelled pool
    (the two settings of Bickford Smith et al. 2023).
    """
    inputs, x = strategy.inputs, pool_x[candidates_P]
    m = input_options["targets"] if "target_log_probs_M_K_C" in inputs else 0
    from_target_set = strategy.target_set and target_x is not None
    source_x, source_U = (target_x, torch.arange(len(target_x))) if from_target_set else (pool_x, unlabelled_U)
    if m > len(source_U):
        where = "inputs of the target set" if from_target_set else "unlabelled points"
        raise ValueError(f"{strategy.name} needs {m} target inputs, more than the {len(source_U)} {where}.")
    if m:
        targets_M = source_U[torch.randperm(len(source_U), generator=generator)[:m]]
        x = torch.cat([x, source_x[targets_M]])
    k = settings.mc_samples if "log_probs_N_K_C" in inputs else 0
    dropout_off = "dropout_off_probs_N_C" in inputs or "features_N_H" in inputs
    n, fields = len(candidates_P), {}
    if not (k or dropout_off):
        return PoolInputs(n)
    prediction = predict(model, x, k, generator, dropout_off=dropout_off)
    if k:
        fields["log_probs_N_K_C"] = prediction.log_probs_N_K_C[:n]
    if m:
        fields["target_log_probs_M_K_C"] = prediction.log_probs_N_K_C[n:]
    if dropout_off:
        fields["dropout_off_probs_N_C"] = prediction.dropout_off_log_probs_N_C[:n].exp()
        fields["features_N_H"] = prediction.features_N_H[:n]
    return PoolInputs(n, **fields)


def initial_indices(pool_y: torch.Tensor, per_class: int, seed: int) -> list[int]:
    """A class-balanced random labelled set, ``per_class`` points of each class; depends only on the seed."""
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(pool_y), generator=generator)
    chosen = []
    for c in range(int(pool_y.max()) + 1):
        of_class = perm[pool_y[perm] == c]
        if len(of_class) < per_class:
            raise DataError(f"class {c} has only {len(of_class)} pool points, fewer than initial_per_class={per_class}.")
        chosen += of_class[:per_class].tolist()
    return chosen


def round_generator(seed: int, round_: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + round_)


def train(
    model: McDropoutNet, x: torch.Tensor, y_N: torch.Tensor, settings: TrainSettings, generator: torch.Generator,
    val_x: torch.Tensor | None = None, val_y: torch.Tensor | None = None,
) -> int:
    """Adam on the cross-entropy over shuffled epochs of the labelled set, for
    max(``steps``, ``epochs`` x batches per epoch) steps.

    With ``eval_every`` > 0, every ``eval_every`` steps the model is checked on the validation set
    (dropout off) and the best checkpoint is restored at the end; ``patience`` checks without
    improvement stop early.
    Returns the number of steps taken.
    """
    device = next(model.parameters()).device
    x, y_N = x.to(device), y_N.to(device)
    if settings.eval_every:
        val_x, val_y = val_x.to(device), val_y.to(device)
    n = len(y_N)
    batch_size = min(settings.batch_size, n)
    decayed = [model.head.fc1.weight] if settings.weight_decay_on == "hidden_dense" else list(model.parameters())
    rest = [p for p in model.parameters() if all(p is not d for d in decayed)]
    groups = [{"params": decayed, "weight_decay": settings.weight_decay / n}]
    optimiser = torch.optim.Adam(groups + ([{"params": rest, "weight_decay": 0.0}] if rest else []),
                                 lr=settings.learning_rate)
    order = torch.empty(0, dtype=torch.long)
    best, best_state, checks_since_best = None, None, 0
    total_steps = max(settings.steps, settings.epochs * math.ceil(n / batch_size))
    for step in range(1, total_steps + 1):
        model.train()
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n, generator=generator)])
        batch, order = order[:batch_size].to(device), order[batch_size:]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bfloat16"):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y_N[batch])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if settings.eval_every and (step % settings.eval_every == 0 or step == total_steps):
            quality = _validation_quality(model, val_x, val_y)
            if best is None or quality > best:
                best, best_state, checks_since_best = quality, copy.deepcopy(model.state_dict()), 0
            else:
                checks_since_best += 1
                if settings.patience and checks_since_best >= settings.patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return step


@torch.inference_mode()
def _validation_quality(model: McDropoutNet, val_x: torch.Tensor, val_y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, -NLL) of the deterministic (dropout off) prediction: higher is better."""
    model.eval()
    logits = model(val_x)
    return (logits.argmax(1) == val_y).float().mean().item(), -torch.nn.functional.cross_entropy(logits, val_y).item()


def fit(
    split: Split, labelled: list[int], make_model: Callable[[], McDropoutNet], settings: LoopSettings, round_: int,
    device: torch.device,
) -> tuple[McDropoutNet, torch.Generator]:
    """Round ``round_``'s model, freshly initialised and trained on ``labelled``, and the round's generator."""
    generator = round_generator(settings.seed, round_)
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))  # initialisation and dropout
    model = INITS[settings.init](make_model()).to(device)
    train(model, split.pool_x[labelled], split.pool_y[labelled], settings.train, generator, split.val_x, split.val_y)
    return model, generator


def run(
    split: Split,
    make_model: Callable[[], McDropoutNet],
    settings: LoopSettings,
    device: torch.device,
    finished: list[Round] = (),
) -> Iterator[Round]:
    """Yield one :class:`Round` per labelled-set size, from the initial set up to the budget.

    ``finished`` are rounds of an earlier, interrupted run with the same settings: their
    acquisitions are replayed and the loop continues after them (with nothing left to do when
    the last of them was the final round, at the budget).
    """
    if finished and finished[-1].n_labelled >= settings.budget:
        return
    strategy = get(settings.strategy)
    input_options, options = strategy.split_options(settings.strategy_options)
    labelled = list(settings.initial)
    for done in finished:
        labelled += done.acquired
    is_labelled = torch.zeros(len(split.pool_y), dtype=torch.bool)
    is_labelled[labelled] = True
    round_ = len(finished)
    while True:
        tic = time.perf_counter()
        model, generator = fit(split, labelled, make_model, settings, round_, device)
        train_seconds = time.perf_counter() - tic

        tic = time.perf_counter()
        accuracy, nll, accuracy_dropout_off = evaluate(
            model, getattr(split, f"{settings.evaluate_on}_x"), getattr(split, f"{settings.evaluate_on}_y"),
            settings.test_samples, generator,
        )
        eval_seconds = time.perf_counter() - tic

        acquired, scores, score_seconds, select_seconds = [], [], 0.0, 0.0
        size = min(settings.acquisition_size, settings.budget - len(labelled))
        if size > 0:
            tic = time.perf_counter()
            unlabelled_U = candidates_P = (~is_labelled).nonzero().squeeze(1)
            if settings.pool_subset is not None:
                candidates_P = pool_subset(
                    candidates_P, split.original(candidates_P), settings.pool_subset // split.copies, generator
                )
            pool = pool_inputs(model, split.pool_x, candidates_P, unlabelled_U, strategy, input_options, settings, generator,
                               split.target_x)
            score_seconds = time.perf_counter() - tic

            tic = time.perf_counter()
            batch = select(settings.strategy, pool, size, generator=generator, **options)
            select_seconds = time.perf_counter() - tic
            acquired, scores = candidates_P[batch.indices].tolist(), batch.scores

        yield Round(
            round_, len(labelled), accuracy, nll, accuracy_dropout_off, train_seconds, eval_seconds, score_seconds,
            select_seconds, acquired, scores,
        )
        if size <= 0:
            return
        labelled += acquired
        is_labelled[acquired] = True
        round_ += 1
