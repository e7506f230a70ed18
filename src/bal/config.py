"""params.yaml -> frozen dataclasses, checked before any work starts.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with one
sentence naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bal.acquisition import REGISTRY
from bal.joint_entropy import CONFIGURATION_MEMORY, max_configurations_bound
from bal.loop import LoopSettings, TrainSettings
from bal.models import INITS, MODELS

MNIST_TRAIN_SIZE = 60_000
CLASSES = {"twomoons": 2, "mnist": 10, "repeated_mnist": 10}


class ConfigError(Exception):
    """A bad value in params.yaml."""


@dataclass(frozen=True)
class Run:
    datasets: list[str]
    strategies: list[str]
    seeds: list[int]


@dataclass(frozen=True)
class Compute:
    """Where a run executes. It changes results (float rounding differs between thread counts and
    devices), so the learn stages depend on it and each run records its environment."""

    device: str = "cpu"  # cpu, cuda, cuda:N, or auto (CUDA when present, else CPU)
    threads: int = 1  # torch threads per stage; run stages side by side rather than one with many threads


@dataclass(frozen=True)
class TwoMoonsPrepare:
    n_pool: int = 1000
    n_validation: int = 100
    n_test: int = 2000
    noise: float = 0.12
    seed: int = 0


@dataclass(frozen=True)
class MnistPrepare:
    n_validation: int = 100
    n_dev: int = 0  # held out of the pool for protocol decisions (learn.<dataset>.evaluate_on: dev)
    seed: int = 0


@dataclass(frozen=True)
class RepeatedMnistPrepare(MnistPrepare):
    repeats: int = 3  # BatchBALD paper: every pool image three times
    noise_std: float = 0.1  # isotropic Gaussian noise on each copy (normalised pixel units)


@dataclass(frozen=True)
class Prepare:
    datasets: list[str]  # the prepared folders: every dataset of run.datasets and study.datasets
    twomoons: TwoMoonsPrepare = field(default_factory=TwoMoonsPrepare)
    mnist: MnistPrepare = field(default_factory=MnistPrepare)
    repeated_mnist: RepeatedMnistPrepare = field(default_factory=RepeatedMnistPrepare)


@dataclass(frozen=True)
class NoOptions:
    """A strategy without settings: ``{}`` in params.yaml."""


@dataclass(frozen=True)
class BatchBaldOptions:
    max_configurations: int = 10_000  # exact joint entropy while C^n <= this, else this many samples


@dataclass(frozen=True)
class StochasticOptions:
    beta: float = 1.0  # sampling weight: BALD^beta, exp(beta * BALD), entropy^beta


@dataclass(frozen=True)
class EpigOptions:
    targets: int = 100  # target inputs drawn from the unlabelled pool each round (the EPIG paper's pool setting)


OPTIONS = {"batchbald": BatchBaldOptions, "power_bald": StochasticOptions, "softmax_bald": StochasticOptions,
           "power_entropy": StochasticOptions, "epig": EpigOptions}
# ``options.<strategy>`` for every registered strategy, all required: each strategy's stages depend on
# its own entry (dvc.yaml), which DVC needs to find in params.yaml.
StrategyOptions = dataclasses.make_dataclass(
    "StrategyOptions", [(name, OPTIONS.get(name, NoOptions)) for name in REGISTRY], frozen=True
)


@dataclass(frozen=True)
class Learn:
    model: str
    initial_per_class: int = 2
    acquisition_size: int = 10
    budget: int = 1000
    mc_samples: int = 20  # K consistent dropout masks for scoring the pool
    test_mc_samples: int | None = None  # masks for the test-set prediction (None: mc_samples)
    pool_subset: int | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    init: str = "torch"  # or "keras": Glorot-uniform weights and zero biases, as Gal et al.'s Keras code
    evaluate_on: str = "test"  # or "dev": protocol measurements, never judged on the test set

    def loop_settings(self, strategy: str, seed: int, initial: list[int], options: dict) -> LoopSettings:
        return LoopSettings(
            strategy, seed, tuple(initial), self.acquisition_size, self.budget, self.mc_samples,
            self.test_mc_samples, self.pool_subset, self.train, options, self.init, self.evaluate_on,
        )


@dataclass(frozen=True)
class Learns:
    twomoons: Learn
    mnist: Learn
    repeated_mnist: Learn


@dataclass(frozen=True)
class Study:
    """The acquisition-size study: every dataset x strategy x acquisition size x seed, each run to
    ``budget`` labels with the rest of ``learn.<dataset>`` (every key of which but ``budget`` and
    ``acquisition_size`` is a DVC dependency of its stages, so it must be written out: STUDY_LEARN_KEYS)."""

    datasets: list[str]
    strategies: list[str]
    acquisition_sizes: list[int]
    seeds: list[int]
    budget: int = 300


@dataclass(frozen=True)
class Params:
    run: Run
    compute: Compute
    prepare: Prepare
    learn: Learns
    study: Study
    options: StrategyOptions

    def strategy_options(self, strategy: str) -> dict:
        """``options.<strategy>`` as keyword arguments of its selector."""
        return dataclasses.asdict(getattr(self.options, strategy))

    def study_learn(self, dataset: str, acquisition_size: int) -> Learn:
        """``learn.<dataset>`` with one of the study's acquisition sizes and the study's budget."""
        if acquisition_size not in self.study.acquisition_sizes:
            raise ConfigError(f"acquisition size {acquisition_size} is not in study.acquisition_sizes "
                              f"{self.study.acquisition_sizes}.")
        return dataclasses.replace(getattr(self.learn, dataset), acquisition_size=acquisition_size,
                                   budget=self.study.budget)

    def pool_size(self, dataset: str) -> int:
        if dataset == "twomoons":
            return self.prepare.twomoons.n_pool
        prepare = getattr(self.prepare, dataset)
        return (MNIST_TRAIN_SIZE - prepare.n_validation - prepare.n_dev) * getattr(prepare, "repeats", 1)


# The keys of learn.<dataset> that the study stages read (dvc.yaml lists them as their params).
STUDY_LEARN_KEYS = ("model", "initial_per_class", "mc_samples", "test_mc_samples", "pool_subset", "train", "init",
                    "evaluate_on")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str):
    """Check ``value`` against the annotation ``tp`` and build nested dataclasses."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner, key)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key} = {value!r}: must be a non-empty list of {_type_name(inner)}.")
        return [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise ConfigError(f"{key} = {value!r}: must be of type {tp.__name__}.")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r}: must be a finite number.")
    return value


def _build(cls, data, key: str):
    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(data, dict):
        raise ConfigError(f"{key or 'params.yaml'} = {data!r}: must be a mapping with keys {', '.join(names)}.")
    hints = typing.get_type_hints(cls)
    prefix = f"{key}." if key else ""
    unknown = sorted((str(k) for k in data if k not in names))
    if unknown:
        shown = unknown[0] if unknown[0].isidentifier() else repr(unknown[0])
        raise ConfigError(f"{prefix}{shown} is not a known key; allowed under {key or 'the top level'}: {', '.join(names)}.")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _convert(data[f.name], hints[f.name], f"{prefix}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{f.name} is missing.")
    return cls(**values)


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r}: {allowed}.")


def _check_names(key: str, names: list, known: list[str]) -> None:
    for name in names:
        _require(name in known, key, name, f"unknown name; known: {', '.join(known)}")
    _require(len(set(names)) == len(names), key, names, "names must not repeat")


def _check_seeds(key: str, seeds: list[int]) -> None:
    for seed in seeds:
        _require(seed >= 0, key, seed, "seeds must be non-negative integers")
    _require(len(set(seeds)) == len(seeds), key, seeds, "seeds must not repeat")


def _check(params: Params, data: dict) -> None:
    """Every check across keys; ``data`` is params.yaml as read, for what must be written out."""
    run, study = params.run, params.study
    _check_names("run.datasets", run.datasets, list(CLASSES))
    _check_names("run.strategies", run.strategies, list(REGISTRY))
    _check_seeds("run.seeds", run.seeds)
    _check_names("study.datasets", study.datasets, list(CLASSES))
    _check_names("prepare.datasets", params.prepare.datasets, list(CLASSES))
    for key, names in (("run.datasets", run.datasets), ("study.datasets", study.datasets)):
        for name in names:
            _require(name in params.prepare.datasets, key, name, "must also be in prepare.datasets, which prepares it")
    for dataset in study.datasets:
        missing = [name for name in STUDY_LEARN_KEYS if name not in data["learn"][dataset]]
        if missing:
            raise ConfigError(f"learn.{dataset}.{missing[0]} is missing; study.datasets holds {dataset}, whose study "
                              "stages depend on that key, so write it out (null for the default).")
    _check_names("study.strategies", study.strategies, list(REGISTRY))
    _check_seeds("study.seeds", study.seeds)
    _require(len(set(study.acquisition_sizes)) == len(study.acquisition_sizes), "study.acquisition_sizes",
             study.acquisition_sizes, "sizes must not repeat")
    _require(params.compute.device in ("auto", "cpu", "cuda") or params.compute.device.startswith("cuda:"),
             "compute.device", params.compute.device, "must be auto, cpu, cuda or cuda:N")
    _require(params.compute.threads >= 1, "compute.threads", params.compute.threads, "must be at least 1")

    for dataset in CLASSES:
        seed = getattr(params.prepare, dataset).seed
        _require(seed >= 0, f"prepare.{dataset}.seed", seed, "must be a non-negative integer")
    moons = params.prepare.twomoons
    for name in ("n_pool", "n_validation", "n_test"):
        _require(getattr(moons, name) >= 1, f"prepare.twomoons.{name}", getattr(moons, name), "must be at least 1")
    _require(moons.noise >= 0, "prepare.twomoons.noise", moons.noise, "must be non-negative")
    for dataset in ("mnist", "repeated_mnist"):
        prepare = getattr(params.prepare, dataset)
        _require(1 <= prepare.n_validation < MNIST_TRAIN_SIZE, f"prepare.{dataset}.n_validation", prepare.n_validation,
                 f"must be between 1 and {MNIST_TRAIN_SIZE - 1}")
        _require(0 <= prepare.n_dev <= MNIST_TRAIN_SIZE - prepare.n_validation - 1000, f"prepare.{dataset}.n_dev",
                 prepare.n_dev, f"must be between 0 and {MNIST_TRAIN_SIZE - prepare.n_validation - 1000} "
                 "(60,000 training images less the validation set and a pool of at least 1,000)")
    repeated = params.prepare.repeated_mnist
    _require(repeated.repeats >= 1, "prepare.repeated_mnist.repeats", repeated.repeats, "must be at least 1")
    _require(repeated.noise_std >= 0, "prepare.repeated_mnist.noise_std", repeated.noise_std, "must be non-negative")

    for name, option in vars(params.options).items():
        if isinstance(option, StochasticOptions):
            _require(option.beta >= 0, f"options.{name}.beta", option.beta, "must be non-negative")
    _require(params.options.batchbald.max_configurations >= 1, "options.batchbald.max_configurations",
             params.options.batchbald.max_configurations, "must be at least 1")

    for dataset in CLASSES:
        _check_learn(params, dataset, getattr(params.learn, dataset), f"learn.{dataset}", run.strategies)
    for dataset in study.datasets:
        for size in study.acquisition_sizes:
            _check_learn(params, dataset, params.study_learn(dataset, size), f"learn.{dataset}", study.strategies,
                         size_key="study.acquisition_sizes", budget_key="study.budget")


def _check_learn(
    params: Params, dataset: str, learn: Learn, key: str, strategies: list[str],
    size_key: str | None = None, budget_key: str | None = None,
) -> None:
    """The checks of one ``learn.<dataset>``; the study's sizes and budget are named by their own keys."""
    size_key, budget_key = size_key or f"{key}.acquisition_size", budget_key or f"{key}.budget"
    needs_samples = [s for s in strategies if REGISTRY[s].needs_samples]
    pool = params.pool_size(dataset)
    initial = learn.initial_per_class * CLASSES[dataset]
    _require(learn.model in MODELS, f"{key}.model", learn.model, f"known models: {', '.join(MODELS)}")
    _require(learn.init in INITS, f"{key}.init", learn.init, f"must be one of {', '.join(INITS)}")
    has_dev = dataset != "twomoons" and getattr(params.prepare, dataset).n_dev > 0
    _require(learn.evaluate_on == "test" or (learn.evaluate_on == "dev" and has_dev), f"{key}.evaluate_on",
             learn.evaluate_on, "must be test, or dev where prepare.<dataset>.n_dev > 0")
    _require(learn.initial_per_class >= 1, f"{key}.initial_per_class", learn.initial_per_class, "must be at least 1")
    _require(learn.acquisition_size >= 1, size_key, learn.acquisition_size, "must be at least 1")
    _require(learn.budget > initial, budget_key, learn.budget,
             f"must exceed the initial labelled set of {dataset} ({initial} = initial_per_class x {CLASSES[dataset]} classes)")
    _require(learn.budget <= pool, budget_key, learn.budget, f"must not exceed the {dataset} pool ({pool} points)")
    _require(learn.mc_samples >= (2 if needs_samples else 1), f"{key}.mc_samples", learn.mc_samples,
             f"must be at least 2 for {', '.join(needs_samples)}" if needs_samples else "must be at least 1")
    if learn.test_mc_samples is not None:
        _require(learn.test_mc_samples >= 1, f"{key}.test_mc_samples", learn.test_mc_samples,
                 "must be null (same as mc_samples) or at least 1")
    if learn.pool_subset is not None:
        copies = params.prepare.repeated_mnist.repeats if dataset == "repeated_mnist" else 1  # originals come with all copies
        low = learn.acquisition_size * copies
        _require(low <= learn.pool_subset <= pool, f"{key}.pool_subset", learn.pool_subset,
                 f"must be null or between {low} ({size_key.rsplit('.', 1)[-1]} {learn.acquisition_size} x {copies} "
                 f"copies of each original) and the pool ({pool} points)")
    train = learn.train
    for name in ("steps", "batch_size"):
        _require(getattr(train, name) >= 1, f"{key}.train.{name}", getattr(train, name), "must be at least 1")
    _require(train.learning_rate > 0, f"{key}.train.learning_rate", train.learning_rate, "must be positive")
    _require(train.weight_decay >= 0, f"{key}.train.weight_decay", train.weight_decay, "must be non-negative")
    _require(train.precision in ("float32", "bfloat16"), f"{key}.train.precision", train.precision,
             "must be float32 or bfloat16")
    _require(train.weight_decay_on in ("all", "hidden_dense"), f"{key}.train.weight_decay_on", train.weight_decay_on,
             "must be all or hidden_dense")
    for name in ("eval_every", "patience", "epochs"):
        _require(getattr(train, name) >= 0, f"{key}.train.{name}", getattr(train, name), "must be non-negative")
    _require(train.patience == 0 or train.eval_every > 0, f"{key}.train.patience", train.patience,
             "must be 0 while eval_every is 0 (patience counts validation checks, and there are none)")
    if "epig" in strategies:
        targets, most = params.options.epig.targets, pool - learn.budget
        _require(1 <= targets <= most, "options.epig.targets", targets,
                 f"must be between 1 and the {most} points the {dataset} pool still holds at the budget ({budget_key})")
    if "batchbald" in strategies:
        configurations = params.options.batchbald.max_configurations
        bound = max_configurations_bound(learn.mc_samples, CLASSES[dataset])
        _require(configurations <= bound, "options.batchbald.max_configurations", configurations,
                 f"must be at most {bound} for {key} (K = {learn.mc_samples} samples, C = {CLASSES[dataset]} "
                 f"classes), or its configuration tables outgrow {CONFIGURATION_MEMORY // 2**30} GiB")


def load_params(path: Path) -> Params:
    """Read and check params.yaml."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    params = _build(Params, data, "")
    _check(params, data)
    return params
