import dataclasses

import pytest
import torch

import bal.loop

from bal.inference import predict_log_probs_naive
from bal.loop import LoopSettings, TrainSettings, initial_indices, pool_inputs, pool_subset, run, train
from bal.models import mlp
from bal.prepared import Prepared, Split, load_prepared, save_prepared
from bal.sources.twomoons import prepare_two_moons
from bal.strategies import get


def moons_mlp():
    return mlp((2,), 2, 64, 0.25, 0.25)


def tiny_split():
    arrays = prepare_two_moons(200, 10, 200, 0.1, seed=0)
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return Split(t["pool_x"], t["pool_y"].long(), t["val_x"], t["val_y"].long(), t["test_x"], t["test_y"].long())


def settings(split, strategy="bald"):
    return LoopSettings(
        strategy=strategy, seed=1, initial=tuple(initial_indices(split.pool_y, 1, 1)), acquisition_size=3,
        budget=12, mc_samples=5, pool_subset=50, train=TrainSettings(steps=30),
    )


def test_rounds_reach_budget_and_never_relabel():
    split = tiny_split()
    rounds = list(run(split, moons_mlp, settings(split), torch.device("cpu")))
    assert [r.n_labelled for r in rounds] == [2, 5, 8, 11, 12]
    assert [len(r.acquired) for r in rounds] == [3, 3, 3, 1, 0]
    acquired = [i for r in rounds for i in r.acquired]
    assert len(set(acquired + list(settings(split).initial))) == 12
    assert all(0 <= r.accuracy <= 1 and 0 <= r.accuracy_dropout_off <= 1 for r in rounds)


def test_test_set_prediction_uses_its_own_mask_count(monkeypatch):
    split = tiny_split()
    used = []
    monkeypatch.setattr(bal.loop, "evaluate", lambda model, x, y, k, generator: used.append(k) or (0.5, 1.0, 0.5))
    list(run(split, moons_mlp, dataclasses.replace(settings(split), test_mc_samples=3), torch.device("cpu")))
    list(run(split, moons_mlp, settings(split), torch.device("cpu")))
    assert used == [3] * 5 + [5] * 5


def test_each_round_is_evaluated_on_the_chosen_split(monkeypatch):
    split = tiny_split()
    split = dataclasses.replace(split, dev_x=split.test_x[:37], dev_y=split.test_y[:37])
    seen = []
    monkeypatch.setattr(bal.loop, "evaluate", lambda model, x, y, k, generator: seen.append(len(y)) or (0.5, 1.0, 0.5))
    list(run(split, moons_mlp, dataclasses.replace(settings(split), evaluate_on="dev"), torch.device("cpu")))
    list(run(split, moons_mlp, settings(split), torch.device("cpu")))
    assert seen == [37] * 5 + [200] * 5


def test_weight_decay_on_the_hidden_dense_layer_alone(monkeypatch):
    split = tiny_split()
    labelled = initial_indices(split.pool_y, 5, 0)
    shrink = {}
    for scope in ("all", "hidden_dense"):
        torch.manual_seed(0)
        model = moons_mlp()
        before = {name: p.detach().abs().mean().item() for name, p in model.named_parameters()}
        settings_ = TrainSettings(steps=200, learning_rate=0.01, weight_decay=1e6, weight_decay_on=scope)
        train(model, split.pool_x[labelled], split.pool_y[labelled], settings_, torch.Generator().manual_seed(0))
        shrink[scope] = {name: p.detach().abs().mean().item() / before[name] for name, p in model.named_parameters()}
    assert shrink["all"]["head.fc1.weight"] < 0.2 and shrink["hidden_dense"]["head.fc1.weight"] < 0.2
    assert shrink["all"]["trunk.0.weight"] < 0.2 and shrink["all"]["head.fc2.weight"] < 0.2
    assert shrink["hidden_dense"]["trunk.0.weight"] > 0.5 and shrink["hidden_dense"]["head.fc2.weight"] > 0.5
    assert shrink["hidden_dense"]["head.fc1.bias"] > 0.5  # Keras' W_regularizer: weights, not biases


def test_identical_reruns_and_exact_resume():
    split = tiny_split()
    s = settings(split, "max_entropy")
    full = list(run(split, moons_mlp, s, torch.device("cpu")))
    again = list(run(split, moons_mlp, s, torch.device("cpu")))
    resumed = full[:2] + list(run(split, moons_mlp, s, torch.device("cpu"), finished=full[:2]))

    def key(rounds):
        return [(r.index, r.n_labelled, r.accuracy, r.nll, r.accuracy_dropout_off, r.acquired, r.scores) for r in rounds]

    assert key(again) == key(full)
    assert key(resumed) == key(full)


def test_a_finished_run_is_not_trained_again():
    split = tiny_split()
    s = settings(split)
    full = list(run(split, moons_mlp, s, torch.device("cpu")))
    assert full[-1].n_labelled == s.budget
    assert list(run(split, moons_mlp, s, torch.device("cpu"), finished=full)) == []
    assert [r.n_labelled for r in run(split, moons_mlp, s, torch.device("cpu"), finished=full[:-1])] == [s.budget]


def test_only_strategies_that_look_at_predictions_get_them(monkeypatch):
    split = tiny_split()
    calls = []
    real = bal.loop.predict
    monkeypatch.setattr(bal.loop, "predict", lambda *a, **k: calls.append(1) or real(*a, **k))
    list(run(split, moons_mlp, settings(split, "random"), torch.device("cpu")))
    assert calls == []
    list(run(split, moons_mlp, settings(split, "bald"), torch.device("cpu")))
    assert len(calls) == 4  # every round but the last scores the pool


def validation_script(monkeypatch, qualities):
    """Make the validation checks report ``qualities`` in turn; return the weights seen at each check."""
    states = []

    def scripted(model, val_x, val_y):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return qualities[len(states) - 1]

    monkeypatch.setattr(bal.loop, "_validation_quality", scripted)
    return states


def test_validation_checks_keep_the_best_weights(monkeypatch):
    split = tiny_split()
    labelled = initial_indices(split.pool_y, 3, 0)
    args = (split.pool_x[labelled], split.pool_y[labelled])
    states = validation_script(monkeypatch, [(0.5, -1.0), (0.9, -0.5), (0.7, -0.2), (0.9, -0.6), (0.6, -0.1)])
    model = moons_mlp()
    assert train(model, *args, TrainSettings(steps=50, eval_every=10), torch.Generator(), split.val_x, split.val_y) == 50
    assert len(states) == 5
    best = states[1]  # the highest (accuracy, -NLL); the later equal accuracy has a worse NLL
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)
    assert not all(torch.equal(states[4][k], best[k]) for k in best)


def test_validation_checks_stop_after_patience_checks_without_improvement(monkeypatch):
    split = tiny_split()
    labelled = initial_indices(split.pool_y, 3, 0)
    args = (split.pool_x[labelled], split.pool_y[labelled])
    assert train(moons_mlp(), *args, TrainSettings(steps=2000), torch.Generator()) == 2000
    states = validation_script(monkeypatch, [(0.5, -1.0), (0.8, -1.0), (0.7, -1.0), (0.8, -1.0), (0.6, -1.0)] + [(0.9, 0)] * 200)
    early = TrainSettings(steps=2000, eval_every=10, patience=3)
    model = moons_mlp()
    assert train(model, *args, early, torch.Generator(), split.val_x, split.val_y) == 50  # checks 3, 4, 5 no better than 2
    assert all(torch.equal(model.state_dict()[k], states[1][k]) for k in states[1])


def test_repeated_pool_through_the_loop(tmp_path, monkeypatch):
    """A Repeated pool as prepare writes it: each round scores whole originals with all their unlabelled
    copies, and no point is labelled twice."""
    save_prepared(Prepared(prepare_two_moons(60, 10, 100, 0.1, seed=0), "table", ["0", "1"],
                           repeat={"times": 3, "noise_std": 0.1, "seed": 0}), tmp_path / "rep")
    split = load_prepared(tmp_path / "rep")
    assert split.copies == 3 and len(split.pool_y) == 180
    s = dataclasses.replace(settings(split, "batchbald"), initial=tuple(initial_indices(split.pool_y, 1, 1)),
                            pool_subset=30, budget=14)
    scored = []
    real = bal.loop.pool_subset

    def recording(candidates_P, original_P, originals, generator):
        subset = real(candidates_P, original_P, originals, generator)
        scored.append((originals, candidates_P, subset))
        return subset

    monkeypatch.setattr(bal.loop, "pool_subset", recording)
    rounds = list(run(split, moons_mlp, s, torch.device("cpu")))
    assert [r.n_labelled for r in rounds] == [2, 5, 8, 11, 14]
    acquired = [i for r in rounds for i in r.acquired]
    assert len(set(acquired + list(s.initial))) == 14
    for originals, candidates_P, subset_P in scored:
        assert originals == 10  # pool_subset // copies
        chosen = set(split.original(subset_P).tolist())
        assert len(chosen) == 10
        assert set(subset_P.tolist()) == {p for p in candidates_P.tolist() if p % 60 in chosen}


def test_pool_subset_draws_originals_with_all_their_unlabelled_copies():
    split = Split(*[torch.zeros(12)] * 6, copies=3)  # originals 0..3; point p copies original p % 4
    labelled_P = torch.tensor([1, 6])
    candidates_P = torch.tensor([p for p in range(12) if p not in labelled_P])
    subset_P = pool_subset(candidates_P, split.original(candidates_P), 2, torch.Generator().manual_seed(0))
    originals = set(split.original(subset_P).tolist())
    assert len(originals) == 2
    assert subset_P.tolist() == [p for p in candidates_P.tolist() if p % 4 in originals]  # every copy, pool order
    assert torch.equal(pool_subset(candidates_P, split.original(candidates_P), 4, torch.Generator()), candidates_P)
    plain_P = pool_subset(candidates_P, candidates_P, 5, torch.Generator().manual_seed(0))  # no copies: 5 points
    assert len(plain_P) == 5 and set(plain_P.tolist()) <= set(candidates_P.tolist())


def test_epig_and_badge_run_through_the_loop_with_their_inputs():
    split = tiny_split()
    for strategy, options in (("epig", {"targets": 20}), ("badge", {})):
        s = dataclasses.replace(settings(split, strategy), strategy_options=options)
        rounds = list(run(split, moons_mlp, s, torch.device("cpu")))
        acquired = [i for r in rounds for i in r.acquired]
        assert [r.n_labelled for r in rounds] == [2, 5, 8, 11, 12] and len(set(acquired + list(s.initial))) == 12


def epig_case():
    """A tiny split, an MLP, and its unlabelled points 10..199 of which the first 50 are the candidates."""
    split = tiny_split()
    torch.manual_seed(0)
    unlabelled_U = torch.arange(10, 200)
    return split, moons_mlp(), unlabelled_U, unlabelled_U[:50]


def test_epig_targets_come_from_the_unlabelled_pool_under_the_candidates_masks():
    split, model, unlabelled_U, candidates_P = epig_case()
    pool = pool_inputs(model, split.pool_x, candidates_P, unlabelled_U, get("epig"), {"targets": 190},
                       settings(split, "epig"), torch.Generator().manual_seed(1))
    assert pool.log_probs_N_K_C.shape == (50, 5, 2) and pool.target_log_probs_M_K_C.shape == (190, 5, 2)
    # every unlabelled point is a target, so each candidate is one too, with the very same K predictions
    rows = {tuple(t.flatten().tolist()) for t in pool.target_log_probs_M_K_C}
    assert all(tuple(c.flatten().tolist()) in rows for c in pool.log_probs_N_K_C)
    # the K masks are the generator's draw after the targets', each shared by every candidate and target:
    # K plain forward passes, one mask each, give the very same predictions
    generator = torch.Generator().manual_seed(1)
    targets_M = unlabelled_U[torch.randperm(len(unlabelled_U), generator=generator)]
    masks = model.head.draw_masks(5, generator)
    naive = predict_log_probs_naive(model, split.pool_x[torch.cat([candidates_P, targets_M])], masks)
    assert torch.allclose(pool.log_probs_N_K_C, naive[:50], atol=1e-5)
    assert torch.allclose(pool.target_log_probs_M_K_C, naive[50:], atol=1e-5)
    with pytest.raises(ValueError, match="epig needs 191 target inputs, more than the 190 unlabelled points"):
        pool_inputs(model, split.pool_x, candidates_P, unlabelled_U, get("epig"), {"targets": 191},
                    settings(split, "epig"), torch.Generator())


def test_epig_draws_its_targets_from_the_target_set_and_epig_pool_from_the_pool():
    split, model, unlabelled_U, candidates_P = epig_case()
    target_x = split.test_x[:30] + 5.0  # inputs no pool point has
    s = settings(split, "epig")

    def inputs(strategy, targets, target_set):
        return pool_inputs(model, split.pool_x, candidates_P, unlabelled_U, get(strategy), {"targets": targets}, s,
                           torch.Generator().manual_seed(1), target_set)

    pool = inputs("epig", 30, target_x)
    generator = torch.Generator().manual_seed(1)
    targets_M = torch.randperm(30, generator=generator)
    masks = model.head.draw_masks(5, generator)
    naive = predict_log_probs_naive(model, torch.cat([split.pool_x[candidates_P], target_x[targets_M]]), masks)
    assert torch.allclose(pool.log_probs_N_K_C, naive[:50], atol=1e-5)
    assert torch.allclose(pool.target_log_probs_M_K_C, naive[50:], atol=1e-5)
    from_pool = inputs("epig_pool", 30, target_x)
    assert torch.equal(from_pool.target_log_probs_M_K_C, inputs("epig", 30, None).target_log_probs_M_K_C)
    assert not torch.allclose(from_pool.target_log_probs_M_K_C, pool.target_log_probs_M_K_C)
    with pytest.raises(ValueError, match="epig needs 31 target inputs, more than the 30 inputs of the target set"):
        inputs("epig", 31, target_x)


def test_epig_without_a_target_set_is_epig_pool_round_for_round():
    split = tiny_split()
    runs = {}
    for strategy in ("epig", "epig_pool"):
        s = dataclasses.replace(settings(split, strategy), strategy_options={"targets": 20})
        runs[strategy] = [(r.acquired, r.scores, r.accuracy) for r in run(split, moons_mlp, s, torch.device("cpu"))]
    assert runs["epig"] == runs["epig_pool"]
    with_targets = dataclasses.replace(split, target_x=split.test_x[:40])
    s = dataclasses.replace(settings(split, "epig"), strategy_options={"targets": 20})
    assert [(r.acquired, r.scores, r.accuracy) for r in run(with_targets, moons_mlp, s, torch.device("cpu"))] != runs["epig"]
