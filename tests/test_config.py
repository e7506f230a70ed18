import copy
import dataclasses
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bal.config import ConfigError, load_params

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


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
    assert params.learn.mnist.acquisition_size == 10
    assert params.learn.mnist.train.learning_rate > 0
    assert params.strategy_options("power_bald") == {"beta": 1.0}
    assert params.strategy_options("batchbald") == {"max_configurations": 10_000}
    assert params.strategy_options("bald") == {}
    assert params.compute.device == "cpu"  # the committed results are CPU runs: a GPU is asked for, never assumed


def test_test_set_masks_default_to_the_scoring_masks(tmp_path):
    own = load_params(write(tmp_path, with_change("learn.mnist.test_mc_samples", 7))).learn.mnist
    assert own.loop_settings("bald", 0, [1], {}).test_samples == 7
    same = load_params(write(tmp_path, with_change("learn.mnist.test_mc_samples", None))).learn.mnist
    assert same.loop_settings("bald", 0, [1], {}).test_samples == same.mc_samples


BAD = [
    ("learn.mnist.acquisiton_size", 10, "learn.mnist.acquisiton_size is not a known key"),
    ("learn.mnist.acquisition_size", 0, "learn.mnist.acquisition_size = 0: must be at least 1"),
    ("learn.mnist.acquisition_size", -3, "learn.mnist.acquisition_size = -3"),
    ("learn.mnist.acquisition_size", "ten", "learn.mnist.acquisition_size = 'ten': must be of type int"),
    ("learn.mnist.acquisition_size", 2.5, "must be of type int"),
    ("learn.mnist.budget", 20, "learn.mnist.budget = 20: must exceed the initial labelled set"),
    ("learn.mnist.budget", 100_000, "learn.mnist.budget = 100000: must not exceed the mnist pool"),
    ("learn.twomoons.budget", 5000, "learn.twomoons.budget = 5000"),
    ("learn.mnist.mc_samples", 1, "learn.mnist.mc_samples = 1: must be at least 2 for variation_ratios, mean_std, bald"),
    ("learn.mnist.test_mc_samples", 0, "learn.mnist.test_mc_samples = 0: must be null (same as mc_samples) or at least 1"),
    ("learn.mnist.pool_subset", 70_000, "learn.mnist.pool_subset = 70000"),
    ("learn.mnist.pool_subset", 5, "learn.mnist.pool_subset = 5"),
    ("learn.repeated_mnist.pool_subset", 20, "learn.repeated_mnist.pool_subset = 20: must be null or between 30"),
    ("learn.mnist.model", "resnet", "learn.mnist.model = 'resnet': known models"),
    ("learn.mnist.train.steps", 0, "learn.mnist.train.steps = 0"),
    ("learn.mnist.train.learning_rate", -0.1, "learn.mnist.train.learning_rate = -0.1: must be positive"),
    ("learn.mnist.train.weight_decay", -1, "learn.mnist.train.weight_decay"),
    ("learn.mnist.train.momentum", 0.9, "learn.mnist.train.momentum is not a known key"),
    ("learn.mnist.initial_per_class", 0, "learn.mnist.initial_per_class = 0"),
    ("run.strategies", ["bald", "badl"], "run.strategies = 'badl': unknown name; known: random"),
    ("run.strategies", [], "run.strategies = []: must be a non-empty list"),
    ("run.strategies", ["bald", "bald"], "names must not repeat"),
    ("run.datasets", ["cifar"], "run.datasets = 'cifar': unknown name; known: twomoons, mnist"),
    ("run.seeds", [-1], "run.seeds = -1"),
    ("run.seeds", [True], "run.seeds[0] = True: must be of type int"),
    ("run.seeds", DELETE, "run.seeds is missing"),
    ("study.strategies", ["bald", "batchbal"], "study.strategies = 'batchbal': unknown name"),
    ("study.acquisition_sizes", [4, 0], "study.acquisition_sizes = 0: must be at least 1"),
    ("study.acquisition_sizes", [4, 4], "study.acquisition_sizes = [4, 4]: sizes must not repeat"),
    ("study.acquisition_sizes", [1000], "learn.repeated_mnist.pool_subset = 2000: must be null or between 3000 (acquisition_sizes 1000 x 3"),
    ("study.budget", 10, "study.budget = 10: must exceed the initial labelled set of mnist"),
    ("study.seeds", [0, 0], "study.seeds = [0, 0]: seeds must not repeat"),
    ("study.datasets", ["twomoons", "svhn"], "study.datasets = 'svhn'"),
    ("prepare.datasets", ["twomoons", "mnist"], "study.datasets = 'repeated_mnist': must also be in prepare.datasets"),
    ("prepare.datasets", ["mnist", "mnist"], "prepare.datasets = ['mnist', 'mnist']: names must not repeat"),
    ("compute.device", "tpu", "compute.device = 'tpu'"),
    ("compute.threads", 0, "compute.threads = 0"),
    ("prepare.mnist.n_validation", 0, "prepare.mnist.n_validation = 0"),
    ("prepare.twomoons.noise", -0.1, "prepare.twomoons.noise = -0.1"),
    ("learn.twomoons", None, "learn.twomoons = None: must be a mapping"),
    ("extra", 1, "extra is not a known key; allowed under the top level"),
    ("options.power_bald.beta", -1.0, "options.power_bald.beta = -1.0: must be non-negative"),
    ("options.power_bald.beta", float("inf"), "options.power_bald.beta = inf: must be a finite number"),
    ("options.softmax_bald", {"beta": -2.0}, "options.softmax_bald.beta = -2.0: must be non-negative"),
    ("options.power_entropy", {"beta": -0.5}, "options.power_entropy.beta = -0.5: must be"),
    ("options.batchbald.max_configurations", 0, "options.batchbald.max_configurations = 0"),
    ("options.batchbald.max_configurations", 2_000_000,
     "options.batchbald.max_configurations = 2000000: must be at most 1167110 for learn.mnist (K = 100 samples, C = 10"),
    ("options.bald", {"beta": 1.0}, "options.bald.beta is not a known key"),
    ("options.epig.targets", 0, "options.epig.targets = 0: must be between 1 and"),
    ("options.epig.targets", 961, "options.epig.targets = 961: must be between 1 and the 960 points the twomoons pool still holds"),
    ("options.bald", DELETE, "options.bald is missing"),
    ("options.balde", {}, "options.balde is not a known key"),
    ("learn.mnist.options", {}, "learn.mnist.options is not a known key"),
    ("learn.mnist.train.learning_rate", float("inf"), "learn.mnist.train.learning_rate = inf: must be a finite number"),
    ("learn.mnist.train.weight_decay", float("nan"), "learn.mnist.train.weight_decay = nan: must be a finite number"),
    ("learn.mnist.train.patience", 3, "learn.mnist.train.patience = 3: must be 0 while eval_every is 0"),
    ("learn.repeated_mnist.test_mc_samples", DELETE,
     "learn.repeated_mnist.test_mc_samples is missing; study.datasets holds repeated_mnist"),
    ("learn.mnist.train.precision", "float16", "learn.mnist.train.precision = 'float16': must be float32 or bfloat16"),
    ("learn.mnist.train.patience", -1, "learn.mnist.train.patience = -1"),
    ("prepare.repeated_mnist.repeats", 0, "prepare.repeated_mnist.repeats = 0"),
    ("learn.repeated_mnist.budget", 200_000, "must not exceed the repeated_mnist pool (164700 points)"),
    ("learn.mnist.budget", 55_000, "learn.mnist.budget = 55000: must not exceed the mnist pool (54900 points)"),
    ("prepare.mnist.n_dev", 59_000, "prepare.mnist.n_dev = 59000: must be between 0 and 58900"),
    ("prepare.mnist.n_dev", -1, "prepare.mnist.n_dev = -1"),
    ("learn.mnist.init", "xavier", "learn.mnist.init = 'xavier': must be one of torch, keras"),
    ("learn.mnist.evaluate_on", "val", "learn.mnist.evaluate_on = 'val': must be test, or dev"),
    ("learn.twomoons.evaluate_on", "dev", "learn.twomoons.evaluate_on = 'dev': must be test, or dev where"),
    ("learn.mnist.train.weight_decay_on", "conv", "learn.mnist.train.weight_decay_on = 'conv': must be all or hidden_dense"),
]


@pytest.mark.parametrize("key, value, message", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_params_named(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as err:
        load_params(write(tmp_path, with_change(key, value)))
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
    accepted config against, so that a value wrongly accepted fails the test."""
    from bal.config import CLASSES, MNIST_TRAIN_SIZE

    def numbers(node, key=""):
        if dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                yield from numbers(getattr(node, f.name), f"{key}.{f.name}")
        elif isinstance(node, list):
            for x in node:
                yield from numbers(x, key)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            yield key, node

    for key, value in numbers(params):
        assert math.isfinite(value) and value >= 0, (key, value)
    assert set(params.prepare.datasets) >= set(params.run.datasets) | set(params.study.datasets)
    assert params.compute.threads >= 1
    assert all(b >= 0 for b in (o.beta for o in vars(params.options).values() if hasattr(o, "beta")))
    for name in CLASSES:
        learn = getattr(params.learn, name)
        initial = learn.initial_per_class * CLASSES[name]
        assert learn.acquisition_size >= 1 and learn.initial_per_class >= 1 and learn.mc_samples >= 1
        assert initial < learn.budget <= params.pool_size(name)
        assert learn.train.steps >= 1 and learn.train.batch_size >= 1 and learn.train.learning_rate > 0
        assert learn.train.patience == 0 or learn.train.eval_every > 0
        assert learn.train.precision in ("float32", "bfloat16") and learn.model in ("gal_cnn", "moons_mlp")
        assert learn.init in ("torch", "keras") and learn.train.weight_decay_on in ("all", "hidden_dense")
        assert learn.evaluate_on == "test" or (learn.evaluate_on == "dev" and getattr(params.prepare, name).n_dev > 0)
        assert learn.pool_subset is None or learn.acquisition_size <= learn.pool_subset <= params.pool_size(name)
    for name in ("mnist", "repeated_mnist"):
        prepare = getattr(params.prepare, name)
        assert 1 <= prepare.n_validation and prepare.n_validation + prepare.n_dev + 1000 <= MNIST_TRAIN_SIZE
    assert params.study.budget > max(getattr(params.learn, d).initial_per_class * CLASSES[d] for d in params.study.datasets)


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
        params = load_params(path)
    except ConfigError as err:
        assert str(err).count("\n") == 0 and str(err).endswith(".")
    else:
        honourable(params)

