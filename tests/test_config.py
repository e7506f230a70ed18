import copy
import dataclasses
import math
import types
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import bal.config
from bal.config import ConfigError, Learn, check_all, load_params
from bal.prepared import Split
from bal.loop import TrainSettings

ROOT = Path(__file__).resolve().parents[1]

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def checked(path):
    """params.yaml loaded and given every check that needs no data, as make repro does before DVC starts."""
    params = load_params(path)
    check_all(params)
    return params


def write(tmp_path, data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


DELETE = object()


def with_change(key, value, data=PARAMS):
    """A deep copy of ``data`` with the dotted ``key`` set to ``value`` (or deleted)."""
    data = copy.deepcopy(data)
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


def test_committed_params_load(tmp_path):
    params = load_params(write(tmp_path, PARAMS))
    assert params.learn['mnist'].acquisition_size == 10
    assert params.learn['mnist'].train.learning_rate > 0
    assert params.strategy_options("power_bald") == {"beta": 1.0}
    assert params.strategy_options("batchbald") == {"max_configurations": 10_000}
    assert params.strategy_options("bald") == {}
    assert params.compute.device == "cpu"  # the committed results are CPU runs: a GPU is asked for, never assumed


def test_test_set_masks_default_to_the_scoring_masks(tmp_path):
    own = load_params(write(tmp_path, with_change("learn.mnist.test_mc_samples", 7))).learn['mnist']
    assert own.loop_settings("bald", 0, [1], {}).test_samples == 7
    same = load_params(write(tmp_path, with_change("learn.mnist.test_mc_samples", None))).learn['mnist']
    assert same.loop_settings("bald", 0, [1], {}).test_samples == same.mc_samples


BAD = [
    ("learn.mnist.acquisiton_size", 10, "learn.mnist.acquisiton_size is not a known key"),
    ("learn.mnist.acquisition_size", 0, "learn.mnist.acquisition_size = 0: must be at least 1"),
    ("learn.mnist.acquisition_size", -3, "learn.mnist.acquisition_size = -3"),
    ("learn.mnist.acquisition_size", "ten", "learn.mnist.acquisition_size = 'ten': must be of type int"),
    ("learn.mnist.acquisition_size", 2.5, "must be of type int"),
    ("learn.mnist.mc_samples", 1, "learn.mnist.mc_samples = 1: must be at least 2 for variation_ratios, mean_std, bald"),
    ("learn.mnist.mc_samples", 0, "learn.mnist.mc_samples = 0: must be at least 1"),
    ("learn.mnist.test_mc_samples", 0, "learn.mnist.test_mc_samples = 0: must be null (same as mc_samples) or at least 1"),
    ("learn.mnist.pool_subset", 5, "learn.mnist.pool_subset = 5"),
    ("learn.mnist.model", "resnet", "learn.mnist.model = 'resnet': must be auto (a CNN for images, an MLP for tables) or one of cnn, mlp"),
    ("learn.mnist.train.steps", 0, "learn.mnist.train.steps = 0"),
    ("learn.mnist.train.learning_rate", -0.1, "learn.mnist.train.learning_rate = -0.1: must be positive"),
    ("learn.mnist.train.weight_decay", -1, "learn.mnist.train.weight_decay"),
    ("learn.mnist.train.momentum", 0.9, "learn.mnist.train.momentum is not a known key"),
    ("learn.mnist.initial_per_class", 0, "learn.mnist.initial_per_class = 0"),
    ("run.strategies", ["bald", "badl"], "run.strategies = 'badl': unknown name; known: badge, bald"),
    ("run.strategies", [], "run.strategies = []: must be a non-empty list"),
    ("survey.datasets", "mnist", "survey.datasets = 'mnist': must be a list of str (it may be empty)"),
    ("run.strategies", ["bald", "bald"], "names must not repeat"),
    ("run.datasets", ["cifar"], "run.datasets = 'cifar': must have an entry under prepare or own, which prepares it"),
    ("run.seeds", [-1], "run.seeds = -1"),
    ("run.seeds", [True], "run.seeds[0] = True: must be of type int"),
    ("run.seeds", DELETE, "run.seeds is missing"),
    ("study.strategies", ["bald", "batchbal"], "study.strategies = 'batchbal': unknown name"),
    ("study.acquisition_sizes", [4, 0], "study.acquisition_sizes = 0: must be at least 1"),
    ("study.acquisition_sizes", [4, 4], "study.acquisition_sizes = [4, 4]: sizes must not repeat"),
    ("study.seeds", [0, 0], "study.seeds = [0, 0]: seeds must not repeat"),
    ("survey.datasets", ["fashion_mnist", "mnist"], "survey.datasets = 'mnist': is in run.datasets too"),
    ("shift.datasets", ["mnist_unbalanced", "fashion_mnist"], "shift.datasets = 'fashion_mnist': is in survey.datasets too"),
    ("single.datasets", ["repeated_mnist"], "single.datasets = 'repeated_mnist': is in study.datasets too"),
    ("single.acquisition_sizes", [0], "single.acquisition_sizes = 0: must be at least 1"),
    ("learn.mnist_unbalanced.hidden", DELETE, "learn.mnist_unbalanced.hidden is missing; single.datasets holds mnist_unbalanced"),
    ("prepare.mnist_unbalanced.n_target", 5000, "prepare.mnist_unbalanced.n_target = 5000: must be 0 or below n_dev (5000)"),
    ("survey.strategies", ["bald", "bold"], "survey.strategies = 'bold': unknown name"),
    ("simulate.datasets", ["mnist"], "simulate.datasets = 'mnist': must be one of your own datasets, under own"),
    ("simulate.datasets", ["mine"], "simulate.datasets = 'mine': must have an entry under prepare or own"),
    ("simulate.strategies", ["bald", "bold"], "simulate.strategies = 'bold': unknown name"),
    ("simulate.seeds", [1, 1], "simulate.seeds = [1, 1]: seeds must not repeat"),
    ("report.prediction", "mean", "report.prediction = 'mean': must be one of dropout_off, mc"),
    ("study.datasets", ["twomoons", "svhn"], "study.datasets = 'svhn'"),
    ("prepare.repeated_mnist", DELETE, "study.datasets = 'repeated_mnist': must have an entry under prepare or own"),
    ("own.unused", {"source": "csv"}, "own.unused.path is missing"),  # an entry no grid uses is still checked
    ("own.mine", {"source": "torchvision", "dataset": "mnist"}, "own.mine.source = 'torchvision': must be one of csv, image_folder, npz"),
    ("own.mnist", {"source": "csv", "path": "x.csv"}, "own.mnist is in prepare too; a dataset has one entry"),
    ("prepare.mine", {"source": "csv", "path": "x.csv"}, "prepare.mine.source = 'csv': must be one of torchvision, twomoons (your own files go under own)"),
    ("prepare.repeated_mnist.source", "repeat", "prepare.repeated_mnist.source = 'repeat': must be one of torchvision, twomoons"),
    ("prepare.repeated_mnist.source", DELETE, "prepare.repeated_mnist.source = None: must be one of torchvision, twomoons"),
    ("prepare.repeated_mnist.dataset", "cifar", "prepare.repeated_mnist.dataset = 'cifar': must be one of mnist, fashion_mnist"),
    ("prepare.mnist.path", "/data", "prepare.mnist.path is not a known key; allowed under prepare.mnist: dataset, n_validation, n_dev, seed"),
    ("prepare.mnist", None, "prepare.mnist = None: must be a mapping of its settings"),
    ("prepare.mnist_unbalanced.rare_classes", [0, 10], "prepare.mnist_unbalanced.rare_classes = 10: must be classes 0 to 9"),
    ("prepare.mnist_unbalanced.rare_keep", 0.0, "prepare.mnist_unbalanced.rare_keep = 0.0: must be a fraction in (0, 1]"),
    ("prepare.mnist.n_dev", -1, "prepare.mnist.n_dev = -1: must be non-negative"),
    ("learn.mnist.p_in", 1.0, "learn.mnist.p_in = 1.0: must be a dropout rate in [0, 1)"),
    ("learn.mnist.hidden", 0, "learn.mnist.hidden = 0: must be at least 1"),
    ("learn.mnist", DELETE, "learn.mnist is missing; run.datasets holds mnist"),
    ("compute.device", "tpu", "compute.device = 'tpu'"),
    ("compute.device", "auto", "compute.device = 'auto': must be cpu, cuda or cuda:N"),
    ("suggest.mnist", {}, "suggest.mnist.strategy is missing"),
    ("suggest.mnist", {"strategy": "bold"}, "suggest.mnist.strategy = 'bold': unknown name"),
    ("compute.threads", 0, "compute.threads = 0"),
    ("prepare.mnist.n_validation", 0, "prepare.mnist.n_validation = 0"),
    ("prepare.twomoons.noise", -0.1, "prepare.twomoons.noise = -0.1"),
    ("learn.twomoons", None, "learn.twomoons = None: must be a mapping"),
    ("extra", 1, "extra is not a known key; allowed under the top level"),
    ("options.power_bald.beta", -1.0, "options.power_bald.beta = -1.0: must be a finite number >= 0"),
    ("options.power_bald.beta", float("inf"), "options.power_bald.beta = inf: must be a finite number"),
    ("options.softmax_bald", {"beta": -2.0}, "options.softmax_bald.beta = -2.0: must be a finite number >= 0"),
    ("options.power_entropy", {"beta": -0.5}, "options.power_entropy.beta = -0.5: must be"),
    ("options.batchbald.max_configurations", 0, "options.batchbald.max_configurations = 0"),
    ("options.bald", {"beta": 1.0}, "options.bald.beta is not a known key"),
    ("options.epig.targets", 0, "options.epig.targets = 0: must be at least 1"),
    ("options.bald", DELETE, "options.bald is missing"),
    ("options.balde", {}, "options.balde is not a known key: not a strategy; strategies: badge, bald"),
    ("options.random", None, "options.random = None: must be a mapping of its settings"),
    ("learn.mnist.options", {}, "learn.mnist.options is not a known key"),
    ("learn.mnist.train.learning_rate", float("inf"), "learn.mnist.train.learning_rate = inf: must be a finite number"),
    ("learn.mnist.train.weight_decay", float("nan"), "learn.mnist.train.weight_decay = nan: must be a finite number"),
    ("learn.mnist.train.patience", 3, "learn.mnist.train.patience = 3: must be 0 while eval_every is 0"),
    ("learn.repeated_mnist.test_mc_samples", DELETE,
     "learn.repeated_mnist.test_mc_samples is missing; study.datasets holds repeated_mnist"),
    ("learn.mnist.train.precision", "float16", "learn.mnist.train.precision = 'float16': must be float32 or bfloat16"),
    ("learn.mnist.train.patience", -1, "learn.mnist.train.patience = -1"),
    ("prepare.repeated_mnist.repeats", 0, "prepare.repeated_mnist.repeats = 0"),
    ("prepare.mnist.n_dev", -1, "prepare.mnist.n_dev = -1"),
    ("learn.mnist.init", "xavier", "learn.mnist.init = 'xavier': must be one of torch, keras"),
    ("learn.mnist.evaluate_on", "val", "learn.mnist.evaluate_on = 'val': must be test or dev"),
    ("learn.mnist.train.weight_decay_on", "conv", "learn.mnist.train.weight_decay_on = 'conv': must be all or hidden_dense"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_params_named(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as err:
        checked(write(tmp_path, with_change(key, value)))
    assert message in str(err.value)


def test_not_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_params(path)


def _leaf_keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def honourable(params) -> None:
    """An independent statement of what a loaded config must satisfy: what the fuzz checks every
    accepted config against, so that a value wrongly accepted fails the test. (What needs the data,
    a budget within the pool and so on, is checked against prepared data: test_checks_against_data.)"""

    def numbers(node, key=""):
        if dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                yield from numbers(getattr(node, f.name), f"{key}.{f.name}")
        elif isinstance(node, dict):
            for name, value in node.items():
                yield from numbers(value, f"{key}.{name}")
        elif isinstance(node, list):
            for x in node:
                yield from numbers(x, key)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            yield key, node

    for key, value in numbers(params):
        assert math.isfinite(value) and value >= 0, (key, value)
    assert set(params.datasets()) >= set(params.run.datasets) | set(params.survey.datasets) | set(params.study.datasets)
    assert set(params.learn) >= set(params.run.datasets) | set(params.survey.datasets) | set(params.study.datasets)
    assert params.compute.threads >= 1 and params.strategy_options("epig")["targets"] >= 1
    assert params.compute.device == "cpu" or params.compute.device.startswith("cuda")
    for name in params.datasets():
        entry = params.dataset(name)
        for f in ("n_validation", "n_pool", "n_test", "repeats"):
            assert getattr(entry.options, f, 1) >= 1, (name, f)
        assert 0 < getattr(entry.options, "rare_keep", 1) <= 1 and getattr(entry.options, "channels", 1) in (1, 3)
    for learn in params.learn.values():
        assert learn.acquisition_size >= 1 and learn.initial_per_class >= 1 and learn.mc_samples >= 1 and learn.budget >= 1
        assert learn.train.steps >= 1 and learn.train.batch_size >= 1 and learn.train.learning_rate > 0
        assert learn.train.patience == 0 or learn.train.eval_every > 0
        assert learn.train.precision in ("float32", "bfloat16") and learn.model in ("auto", "cnn", "mlp")
        assert learn.init in ("torch", "keras") and learn.train.weight_decay_on in ("all", "hidden_dense")
        assert learn.evaluate_on in ("test", "dev") and 0 <= learn.p_in < 1 and 0 <= learn.p_hidden < 1
        assert learn.pool_subset is None or learn.acquisition_size <= learn.pool_subset


LEAVES = sorted(_leaf_keys(PARAMS))
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.sampled_from([math.inf, -math.inf]),
    st.text(max_size=8),
    st.lists(st.sampled_from(["bald", "random", "mnist", "twomoons", 0, 1, -1, None]), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(LEAVES + ["run", "learn.mnist.train", "nonsense"]), ANY_VALUE), max_size=3))
def test_fuzzed_params_load_or_fail_with_config_error(tmp_path_factory, changes):
    data = PARAMS
    for key, value in changes:
        try:
            data = with_change(key, value, data)
        except TypeError:  # a parent was already replaced by a non-mapping
            continue
    path = tmp_path_factory.mktemp("fuzz") / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        params = checked(path)
    except ConfigError as err:
        assert str(err).count("\n") == 0 and str(err).endswith(".")
    else:
        honourable(params)


# Every key a user may set, with the keys params.yaml leaves at their defaults (the fuzz draws only
# the keys it holds, so it never sets train.patience, say).
SETTABLE = sorted(set(LEAVES)
                  | {f"learn.{d}.{f.name}" for d in PARAMS["learn"] for f in dataclasses.fields(Learn) if f.name != "train"}
                  | {f"learn.{d}.train.{f.name}" for d in PARAMS["learn"] for f in dataclasses.fields(TrainSettings)})
EDGE_VALUES = [None, True, 0, 1, -1, 2.5, math.inf, math.nan, "x", [], {"x": 1}]


def test_every_settable_key_refuses_each_edge_value_it_cannot_honour(monkeypatch):
    """Each settable key set to each edge value, one at a time: a one-sentence ConfigError, or a config
    that ``honourable`` accepts. (The parsed mapping goes straight to the checks; YAML is not the subject.)"""
    assert {"learn.mnist.train.patience", "learn.mnist.hidden", "learn.twomoons.train.precision"} <= set(SETTABLE)
    wrongly_accepted = []
    for key in SETTABLE:
        for value in EDGE_VALUES:
            data = with_change(key, value)
            monkeypatch.setattr(bal.config, "yaml", types.SimpleNamespace(safe_load=lambda text, data=data: data,
                                                                          YAMLError=yaml.YAMLError))
            try:
                params = checked(ROOT / "params.yaml")
            except ConfigError as err:
                assert str(err).count("\n") == 0 and str(err).endswith("."), (key, value, str(err))
            else:
                try:
                    honourable(params)
                except AssertionError as err:
                    wrongly_accepted.append((key, value, str(err)))
    assert wrongly_accepted == []


def fake_split(pool, classes, kind="image", size=28, copies=1, dev=True, targets=0):
    """A Split with the shapes a check looks at, without the memory (expanded views)."""
    x_shape = (1, size, size) if kind == "image" else (4,)
    x = torch.zeros(1, *x_shape).expand(pool, *x_shape)
    y = torch.arange(pool) % classes
    return Split(x, y, x[:10], y[:10], x[:10], y[:10], x[:10] if dev else None, y[:10] if dev else None,
                 class_names=tuple(map(str, range(classes))), kind=kind, copies=copies,
                 target_x=x[:targets] if targets else None)


DATA_BAD = [  # (key, value, dataset, strategy, study run, split, message)
    ("learn.mnist.budget", 20, "mnist", "bald", False, fake_split(54_900, 10), "learn.mnist.budget = 20: must exceed the initial labelled set of mnist (20 = initial_per_class x 10 classes)"),
    ("learn.mnist.budget", 55_000, "mnist", "bald", False, fake_split(54_900, 10), "learn.mnist.budget = 55000: must not exceed the mnist pool (54900 points)"),
    ("learn.mnist.initial_per_class", 3, "mnist", "bald", False, fake_split(300, 150), "learn.mnist.initial_per_class = 3: must not exceed the 2 pool items of class '0'"),
    ("learn.mnist.pool_subset", 70_000, "mnist", "bald", False, fake_split(54_900, 10), "learn.mnist.pool_subset = 70000: must be null or between 10"),
    ("learn.repeated_mnist.pool_subset", 20, "repeated_mnist", "bald", True, fake_split(164_700, 10, copies=3), "learn.repeated_mnist.pool_subset = 20: must be null or between 30"),
    ("study.budget", 10, "repeated_mnist", "bald", True, fake_split(164_700, 10, copies=3), "study.budget = 10: must exceed the initial labelled set of repeated_mnist"),
    ("learn.mnist.evaluate_on", "dev", "mnist", "bald", False, fake_split(54_900, 10, dev=False), "learn.mnist.evaluate_on = 'dev': must be test: mnist has no dev split (prepare.mnist.n_dev)"),
    ("learn.mnist.model", "auto", "mnist", "bald", False, fake_split(54_900, 10, size=12), "learn.mnist.model = 'auto': the CNN needs images of at least 16x16 and mnist's are 12x12: set prepare.mnist.size"),
    ("learn.mnist.model", "mlp", "mnist", "bald", False, fake_split(54_900, 10), "learn.mnist.model = 'mlp': mnist holds images"),
    ("learn.mnist.mc_samples", 1, "mnist", "bald", False, fake_split(54_900, 10), "learn.mnist.mc_samples = 1: must be at least 2 for bald"),
    ("options.epig.targets", 54_000, "mnist", "epig", False, fake_split(54_900, 10), "options.epig.targets = 54000: must be at most the 53900 points the mnist pool still holds"),
    ("options.epig.targets", 2_501, "mnist_unbalanced", "epig", False, fake_split(30_000, 10, targets=2_500), "options.epig.targets = 2501: must be at most the 2500 inputs of the mnist_unbalanced target set (prepare.mnist_unbalanced.n_target)"),
    ("options.epig_pool.targets", 29_701, "mnist_unbalanced", "epig_pool", False, fake_split(30_000, 10, targets=2_500), "options.epig_pool.targets = 29701: must be at most the 29700 points the mnist_unbalanced pool still holds"),
    ("options.batchbald.max_configurations", 2_000_000, "mnist", "batchbald", False, fake_split(54_900, 10),
     "options.batchbald.max_configurations = 2000000: must be at most 1167110 for learn.mnist (K = 100 samples, C = 10"),
]


def check_run(params, dataset, strategy, study, split):
    learn = params.study_learn(dataset, params.study.acquisition_sizes[0]) if study else params.learn[dataset]
    params.check_run(dataset, strategy, learn, split, "study" if study else None)


@pytest.mark.parametrize("key, value, dataset, strategy, study, split, message", DATA_BAD,
                         ids=[f"{k}={v!r}" for k, v, *_ in DATA_BAD])
def test_checks_against_data(tmp_path, key, value, dataset, strategy, study, split, message):
    params = load_params(write(tmp_path, with_change(key, value)))
    with pytest.raises(ConfigError) as err:
        check_run(params, dataset, strategy, study, split)
    assert message in str(err.value)
    check_run(load_params(write(tmp_path, PARAMS)), dataset, strategy, study, fake_split(54_900, 10, copies=split.copies))


def test_a_run_is_checked_for_its_own_strategy_only(tmp_path):
    """A bald run does not fail on epig's options, which it never reads (nor imports)."""
    params = load_params(write(tmp_path, with_change("options.epig.targets", 54_000)))
    check_run(params, "mnist", "bald", False, fake_split(54_900, 10))
    with pytest.raises(ConfigError, match="options.epig.targets = 54000"):
        check_run(params, "mnist", "epig", False, fake_split(54_900, 10))


@pytest.mark.parametrize("key", ["run.datasets", "survey.datasets", "shift.datasets", "study.datasets", "single.datasets",
                                 "simulate.datasets"])
def test_a_grid_may_have_no_datasets(tmp_path, key):
    params = load_params(write(tmp_path, with_change(key, [])))
    assert getattr(params, key.split(".")[0]).datasets == []


def test_report_names_the_curve_column_it_reports(tmp_path):
    assert load_params(write(tmp_path, PARAMS)).report.column("test") == "test_accuracy_dropout_off"
    mc = load_params(write(tmp_path, with_change("report.prediction", "mc"))).report
    assert (mc.column("test"), mc.column("dev")) == ("test_accuracy", "dev_accuracy")
