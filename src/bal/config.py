"""params.yaml -> frozen dataclasses, checked before any work starts.

This module holds the pipeline's own settings (the grids, compute, learn, suggest, report) and
composes the ones that belong to a strategy or a data source: ``options.<strategy>`` is read by
that strategy's ``Options`` (bal.strategies.<name>) and ``prepare.<dataset>`` / ``own.<dataset>``
by its source's (bal.sources.<source>), each imported only when asked for, so that a stage
imports (and DVC tracks) the code of its own strategy or source alone. :func:`check_all` imports
them all: ``make repro`` runs it before DVC starts.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with one
sentence naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from bal import strategies
from bal.errors import ConfigError, Invalid
from bal.loop import LoopSettings, TrainSettings
from bal.models import INITS, MIN_IMAGE_SIZE, MODELS

# A list that may be empty (a grid without datasets has no stages); every other list must not be.
MaybeEmpty = typing.Annotated[list[str], "may be empty"]


@dataclass(frozen=True)
class Run:
    """A grid of learn runs, one per dataset x strategy x seed, each with its dataset's learn entry."""

    datasets: MaybeEmpty
    strategies: list[str]
    seeds: list[int]


# The replication grids of learn runs: ``run`` (stages learn@<dataset>-<strategy>-<seed>), ``survey``
# (stages survey@..., a smaller grid for more datasets) and ``shift`` (stages shift@..., the datasets whose pool
# differs from the test distribution); each writes data/runs/<dataset>/<strategy>/<seed>.
# Your own datasets have their own grid, ``simulate`` (stages simulate@..., writing data/own/...), so that
# working on them never starts or drops a replication grid's stage.
GRIDS = ("run", "survey", "shift")
# The grids of runs at other acquisition sizes, each to its own budget: ``study`` (stages study@..., does BatchBALD
# beat BALD?) and ``single`` (stages single@..., one label a round: the EPIG paper's own protocol).
STUDIES = ("study", "single")
# The groups of datasets: built-in sources (stages prepare@<dataset>) and your own files (prepare_own@<dataset>,
# each depending on its own path).
DATASET_GROUPS = ("prepare", "own")
DEVICES = "cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Compute:
    """Where a run executes. It changes results (float rounding differs between thread counts and
    devices), so the learn stages depend on it and each run records its environment."""

    device: str = "cpu"  # cpu, cuda or cuda:N: named, so that a CPU and a CUDA run never share a param value
    threads: int = 1  # torch threads per stage; run stages side by side rather than one with many threads


@dataclass(frozen=True)
class Dataset:
    """One ``prepare.<dataset>`` or ``own.<dataset>`` entry: its source (a module of bal.sources) and
    that source's options."""

    source: str
    options: object


@dataclass(frozen=True)
class Learn:
    model: str = "auto"  # a CNN for images, an MLP for tables; or cnn, mlp
    initial_per_class: int = 2
    acquisition_size: int = 10
    budget: int = 1000
    mc_samples: int = 20  # K consistent dropout masks for scoring the pool
    test_mc_samples: int | None = None  # masks for the test-set prediction (None: mc_samples)
    pool_subset: int | None = None
    train: TrainSettings = field(default_factory=TrainSettings)
    init: str = "torch"  # or "keras": Glorot-uniform weights and zero biases, as Gal et al.'s Keras code
    evaluate_on: str = "test"  # or "dev": protocol measurements, never judged on the test set
    hidden: int = 128  # width of the dense layers
    p_in: float = 0.25  # dropout before the head's first dense layer
    p_hidden: float = 0.5  # dropout before the output layer

    def make_model(self, kind: str, input_shape: tuple[int, ...], classes: int):
        """The model factory for data of ``kind`` with this input shape and class count."""
        factory = MODELS[{"image": "cnn", "table": "mlp"}[kind] if self.model == "auto" else self.model]
        return functools.partial(factory, input_shape, classes, self.hidden, self.p_in, self.p_hidden)

    def loop_settings(self, strategy: str, seed: int, initial: list[int], options: dict) -> LoopSettings:
        return LoopSettings(
            strategy, seed, tuple(initial), self.acquisition_size, self.budget, self.mc_samples,
            self.test_mc_samples, self.pool_subset, self.train, options, self.init, self.evaluate_on,
        )


# The keys of learn.<dataset> that a study stage reads: all but the two the study sets itself. dvc.yaml
# lists them as its params (tests/test_stages.py compares the two), so they must be written out.
STUDY_SETS = ("acquisition_size", "budget")
STUDY_LEARN_KEYS = tuple(f.name for f in dataclasses.fields(Learn) if f.name not in STUDY_SETS)


@dataclass(frozen=True)
class Study:
    """A grid at other acquisition sizes (STUDIES): every dataset x strategy x acquisition size x seed, each
    run to ``budget`` labels with the rest of ``learn.<dataset>`` (STUDY_LEARN_KEYS)."""

    datasets: MaybeEmpty
    strategies: list[str]
    acquisition_sizes: list[int]
    seeds: list[int]
    budget: int = 300


@dataclass(frozen=True)
class Suggest:
    """``suggest.<dataset>``: rank that dataset's unlabelled items with ``strategy``."""

    strategy: str  # no default: dvc.yaml reads it to name the stage's options dependency


PREDICTIONS = ("dropout_off", "mc")


@dataclass(frozen=True)
class Report:
    """How aggregate, study_summary and figures report a run's accuracy."""

    prediction: str = "dropout_off"  # the deterministic net, as Gal et al.'s code (chosen on the dev split:
    # docs/protocol.md), or mc: the average over test_mc_samples dropout masks
    papers: MaybeEmpty = field(default_factory=list)  # the datasets whose figures carry the papers' MNIST marks

    def column(self, split: str) -> str:
        """The curve column that holds the reported accuracy on ``split``."""
        return f"{split}_accuracy" + ("_dropout_off" if self.prediction == "dropout_off" else "")


@dataclass(frozen=True)
class Params:
    run: Run
    compute: Compute
    prepare: dict[str, dict]  # each entry as written; :meth:`dataset` reads it with its source's options
    learn: dict[str, Learn]
    study: Study
    options: dict[str, dict]  # each entry as written; :meth:`strategy_options` reads it with its strategy's
    own: dict[str, dict] = field(default_factory=dict)
    suggest: dict[str, Suggest] = field(default_factory=dict)
    report: Report = field(default_factory=Report)
    survey: Run = field(default_factory=lambda: Run([], [], []))
    shift: Run = field(default_factory=lambda: Run([], [], []))
    single: Study = field(default_factory=lambda: Study([], [], [], []))
    simulate: Run = field(default_factory=lambda: Run([], [], []))

    def grids(self) -> dict[str, Run]:
        """The learn grids by their params key (GRIDS)."""
        return {name: getattr(self, name) for name in GRIDS}

    def studies(self) -> dict[str, Study]:
        """The grids at other acquisition sizes by their params key (STUDIES)."""
        return {name: getattr(self, name) for name in STUDIES}

    def every_grid(self) -> dict[str, Run | Study]:
        """Every grid of runs by its params key: the replication grids, the studies and your own data's."""
        return {**self.grids(), **self.studies(), "simulate": self.simulate}

    def datasets(self) -> dict[str, str]:
        """Every prepared dataset's name, with the params key of its group (DATASET_GROUPS)."""
        return {name: group for group in DATASET_GROUPS for name in getattr(self, group)}

    def dataset(self, name: str) -> Dataset:
        """``prepare.<name>`` or ``own.<name>``, read with its source's options (importing that source)."""
        from bal import sources  # only here: a learn stage reads prepared folders, never a source

        group = self.datasets().get(name)
        if group is None:
            raise ConfigError(f"dataset {name!r} is in neither prepare nor own; datasets: {', '.join(self.datasets())}.")
        key, entry = f"{group}.{name}", getattr(self, group)[name]
        source, files = entry.get("source"), group == "own"
        if source not in sources.names() or getattr(sources.get(source), "FILES", False) != files:  # its module alone
            known = [s for s in sources.names() if getattr(sources.get(s), "FILES", False) == files]
            raise ConfigError(f"{key}.source = {source!r}: must be one of {', '.join(known)}"
                              + (" (built-in sources go under prepare)" if files else " (your own files go under own)")
                              + ".")
        return Dataset(source, _build(sources.get(source).Options, {k: v for k, v in entry.items() if k != "source"}, key))

    def strategy_options(self, strategy: str) -> dict:
        """``options.<strategy>`` read with its strategy's options dataclass, as keyword arguments."""
        return dataclasses.asdict(self._strategy_options(strategies.get(strategy)))

    def _strategy_options(self, strategy: strategies.Strategy):
        if strategy.name not in self.options:
            raise ConfigError(f"options.{strategy.name} is missing; every strategy needs its entry ({{}} for none), "
                              "which its stages depend on.")
        return _build(strategy.options, self.options[strategy.name], f"options.{strategy.name}")

    def study_learn(self, dataset: str, acquisition_size: int, study: str = "study") -> Learn:
        """``learn.<dataset>`` with one of the acquisition sizes of ``study`` (a key of STUDIES) and its budget."""
        grid = self.studies()[study]
        if acquisition_size not in grid.acquisition_sizes:
            raise ConfigError(f"acquisition size {acquisition_size} is not in {study}.acquisition_sizes "
                              f"{grid.acquisition_sizes}.")
        return dataclasses.replace(self.learn[dataset], acquisition_size=acquisition_size, budget=grid.budget)

    def check_model(self, dataset: str, learn: Learn, split) -> None:
        """The model of ``learn`` against the prepared ``split`` of ``dataset``: a CNN needs images large enough."""
        key, entry = f"learn.{dataset}", f"{self.datasets().get(dataset, 'prepare')}.{dataset}"
        if split.kind == "image" and (learn.model == "cnn" or learn.model == "auto"):
            height, width = split.pool_x.shape[-2:]
            _require(min(height, width) >= MIN_IMAGE_SIZE, f"{key}.model", learn.model,
                     f"the CNN needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} and {dataset}'s are "
                     f"{width}x{height}: set {entry}.size, or model: mlp")
        if learn.model == "mlp" and split.kind == "image":
            raise ConfigError(f"{key}.model = 'mlp': {dataset} holds images; use auto or cnn.")

    def check_run(self, dataset: str, strategy: str, learn: Learn, split, study: str | None = None) -> None:
        """The checks of one run of ``strategy`` on ``dataset`` with ``learn`` (``learn.<dataset>``, or its
        variant in ``study``, a key of STUDIES) that need the prepared ``split`` (a bal.prepared.Split)."""
        keys = (f"{study}.acquisition_sizes", f"{study}.budget") if study else (None, None)
        _check_data(self, dataset, learn, strategies.get(strategy), split, *keys)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value, tp, key: str):
    """Check ``value`` against the annotation ``tp`` and build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *notes = typing.get_args(tp)
        if "may be empty" in notes and not isinstance(value, list):
            raise ConfigError(f"{key} = {value!r}: must be a list of {_type_name(typing.get_args(inner)[0])} (it may be empty).")
        return [] if value == [] else _convert(value, inner, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is dict:
        _, inner = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r}: must be a mapping of dataset names to their settings.")
        return {name: _convert(v, inner, f"{key}.{name}") for name, v in value.items()}
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
    if tp is dict and not isinstance(value, dict):
        raise ConfigError(f"{key} = {value!r}: must be a mapping of its settings ({{}} for none).")
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
    hints = typing.get_type_hints(cls, include_extras=True)
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
    try:
        return cls(**values)
    except Invalid as err:  # the dataclass checked its own values
        raise ConfigError(f"{prefix}{err.field} = {err.value!r}: {err.allowed}.") from None


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r}: {allowed}.")


def _check_names(key: str, names: list, known: list[str], unknown: str = "") -> None:
    for name in names:
        _require(name in known, key, name, unknown or f"unknown name; known: {', '.join(known)}")
    _require(len(set(names)) == len(names), key, names, "names must not repeat")


def _check_seeds(key: str, seeds: list[int]) -> None:
    for seed in seeds:
        _require(seed >= 0, key, seed, "seeds must be non-negative integers")
    _require(len(set(seeds)) == len(seeds), key, seeds, "seeds must not repeat")


def _check_disjoint(params: Params, grid_names: tuple[str, ...], runs: str, folder: str) -> None:
    """No dataset in two of these grids: each grid's stages write the same folder."""
    for i, later in enumerate(grid_names):
        for earlier in grid_names[:i]:
            twice = set(getattr(params, earlier).datasets) & set(getattr(params, later).datasets)
            _require(not twice, f"{later}.datasets", sorted(twice)[0] if twice else None,
                     f"is in {earlier}.datasets too; a dataset's {runs} belong to one grid (each writes {folder})")


def _check(params: Params, data: dict) -> None:
    """Every check across keys that needs neither data nor a strategy's or source's module; ``data`` is
    params.yaml as read, for what must be written out."""
    known, grids = list(params.datasets()), params.every_grid()
    for name in sorted(set(params.prepare) & set(params.own)):
        raise ConfigError(f"own.{name} is in prepare too; a dataset has one entry.")
    names = strategies.names()
    for name, grid in grids.items():
        _check_names(f"{name}.datasets", grid.datasets, known, "must have an entry under prepare or own, which prepares it")
        _check_names(f"{name}.strategies", grid.strategies, names)
        _check_seeds(f"{name}.seeds", grid.seeds)
    for name in sorted(set(params.options) - set(names)):
        raise ConfigError(f"options.{name} is not a known key: not a strategy; strategies: {', '.join(names)}.")
    _check_names("simulate.datasets", params.simulate.datasets, list(params.own),
                 "must be one of your own datasets, under own (the built-in ones have the run, survey and shift grids)")
    _check_disjoint(params, GRIDS, "runs", "data/runs/<dataset>")
    for grid_name, grid in grids.items():
        for name in grid.datasets:
            if name not in params.learn:
                raise ConfigError(f"learn.{name} is missing; {grid_name}.datasets holds {name}, so give it an entry "
                                  "(at least {budget: ..., acquisition_size: ...}).")
    _check_disjoint(params, STUDIES, "study runs", "data/study/<dataset>")
    for name, study in params.studies().items():
        for dataset in study.datasets:
            missing = [key for key in STUDY_LEARN_KEYS if key not in data["learn"][dataset]]
            if missing:
                raise ConfigError(f"learn.{dataset}.{missing[0]} is missing; {name}.datasets holds {dataset}, whose "
                                  f"{name} stages depend on that key, so write it out (null for the default).")
        _require(len(set(study.acquisition_sizes)) == len(study.acquisition_sizes), f"{name}.acquisition_sizes",
                 study.acquisition_sizes, "sizes must not repeat")
    _require(params.compute.device in ("cpu", "cuda") or params.compute.device.startswith("cuda:"),
             "compute.device", params.compute.device, f"must be {DEVICES}: results depend on the device, so name it")
    _require(params.report.prediction in PREDICTIONS, "report.prediction", params.report.prediction,
             f"must be one of {', '.join(PREDICTIONS)}")
    _check_names("report.papers", params.report.papers, known, "must have an entry under prepare or own")
    _require(params.compute.threads >= 1, "compute.threads", params.compute.threads, "must be at least 1")
    for name, suggest in params.suggest.items():
        _require(name in known and name in params.learn, f"suggest.{name}", suggest,
                 f"{name} must have an entry under prepare or own, and a learn.{name} entry")
        _check_names(f"suggest.{name}.strategy", [suggest.strategy], names)
    for name, learn in params.learn.items():
        _check_learn(learn, f"learn.{name}")
    for name, study in params.studies().items():
        for size in study.acquisition_sizes if study.datasets else ():
            _require(size >= 1, f"{name}.acquisition_sizes", size, "must be at least 1")
        _require(study.budget >= 1 or not study.datasets, f"{name}.budget", study.budget, "must be at least 1")


def _check_learn(learn: Learn, key: str) -> None:
    """The checks of one ``learn.<dataset>`` that need neither data nor strategies."""
    _require(learn.model == "auto" or learn.model in MODELS, f"{key}.model", learn.model,
             f"must be auto (a CNN for images, an MLP for tables) or one of {', '.join(MODELS)}")
    _require(learn.init in INITS, f"{key}.init", learn.init, f"must be one of {', '.join(INITS)}")
    _require(learn.evaluate_on in ("test", "dev"), f"{key}.evaluate_on", learn.evaluate_on, "must be test or dev")
    for name in ("initial_per_class", "acquisition_size", "budget", "hidden"):
        _require(getattr(learn, name) >= 1, f"{key}.{name}", getattr(learn, name), "must be at least 1")
    for name in ("p_in", "p_hidden"):
        _require(0 <= getattr(learn, name) < 1, f"{key}.{name}", getattr(learn, name), "must be a dropout rate in [0, 1)")
    _require(learn.mc_samples >= 1, f"{key}.mc_samples", learn.mc_samples, "must be at least 1")
    if learn.test_mc_samples is not None:
        _require(learn.test_mc_samples >= 1, f"{key}.test_mc_samples", learn.test_mc_samples,
                 "must be null (same as mc_samples) or at least 1")
    if learn.pool_subset is not None:
        _require(learn.pool_subset >= learn.acquisition_size, f"{key}.pool_subset", learn.pool_subset,
                 f"must be null or at least acquisition_size ({learn.acquisition_size})")
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


def _check_data(
    params: Params, dataset: str, learn: Learn, strategy: strategies.Strategy, split, size_key: str | None,
    budget_key: str | None,
) -> None:
    """The checks of one learn or study run of ``strategy`` on ``dataset`` against its prepared ``split``."""
    key = f"learn.{dataset}"
    size_key, budget_key = size_key or f"{key}.acquisition_size", budget_key or f"{key}.budget"
    pool, classes = len(split.pool_y), split.classes
    _check_samples(learn, key, [strategy])
    counts = torch.bincount(split.pool_y, minlength=classes)
    fewest = int(counts.argmin())
    _require(learn.initial_per_class <= counts[fewest], f"{key}.initial_per_class", learn.initial_per_class,
             f"must not exceed the {int(counts[fewest])} pool items of class {split.class_names[fewest]!r}")
    initial = learn.initial_per_class * classes
    _require(learn.budget > initial, budget_key, learn.budget,
             f"must exceed the initial labelled set of {dataset} ({initial} = initial_per_class x {classes} classes)")
    _require(learn.budget <= pool, budget_key, learn.budget, f"must not exceed the {dataset} pool ({pool} points)")
    entry = f"{params.datasets().get(dataset, 'prepare')}.{dataset}"
    _require(learn.evaluate_on == "test" or split.dev_x is not None, f"{key}.evaluate_on", learn.evaluate_on,
             f"must be test: {dataset} has no dev split ({entry}.n_dev)")
    params.check_model(dataset, learn, split)
    if learn.pool_subset is not None:
        low = learn.acquisition_size * split.copies  # originals come with all their copies
        _require(low <= learn.pool_subset <= pool, f"{key}.pool_subset", learn.pool_subset,
                 f"must be null or between {low} ({size_key.rsplit('.', 1)[-1]} {learn.acquisition_size} x "
                 f"{split.copies} copies of each original) and the pool ({pool} points)")
    if strategy.check_run is not None:
        strategy.check_run(params._strategy_options(strategy),
                           strategies.Run(dataset, pool, learn.budget, budget_key, learn.mc_samples, classes,
                                          0 if split.target_x is None else len(split.target_x)))


def _check_samples(learn: Learn, key: str, grid: list[strategies.Strategy]) -> None:
    """mc_samples against the strategies that are meaningless with one sample."""
    needs = [s.name for s in grid if s.needs_samples]
    _require(learn.mc_samples >= 2 or not needs, f"{key}.mc_samples", learn.mc_samples,
             f"must be at least 2 for {', '.join(needs)}")


def load_params(path: Path) -> Params:
    """Read params.yaml and make the checks that need no data and no strategy's or source's module."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping with keys run, compute, prepare, learn, study, options.")
    params = _build(Params, data, "")
    _check(params, data)
    return params


def check_all(params: Params) -> None:
    """Every check that needs a strategy's or a source's module, for every strategy and dataset in
    params.yaml: what ``make repro`` runs before DVC starts, so that no stage fails on a bad entry."""
    for name in strategies.names():
        params.strategy_options(name)
    for name in params.datasets():
        params.dataset(name)
    for grid in params.every_grid().values():
        chosen = [strategies.get(s) for s in grid.strategies]
        for dataset in grid.datasets:
            _check_samples(params.learn[dataset], f"learn.{dataset}", chosen)
    for name, suggest in params.suggest.items():
        _check_samples(params.learn[name], f"learn.{name}", [strategies.get(suggest.strategy)])
