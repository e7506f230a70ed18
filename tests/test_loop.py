import dataclasses

import torch

import bal.loop

from bal.data import Split, initial_indices, prepare_two_moons
from bal.loop import LoopSettings, TrainSettings, pool_subset, run, train
from bal.models import moons_mlp


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
    assert all(0 <= r.test_accuracy <= 1 for r in rounds)


def test_test_set_prediction_uses_its_own_mask_count(monkeypatch):
    split = tiny_split()
    used = []
    monkeypatch.setattr(bal.loop, "evaluate", lambda model, x, y, k, generator: used.append(k) or (0.5, 1.0))
    list(run(split, moons_mlp, dataclasses.replace(settings(split), test_mc_samples=3), torch.device("cpu")))
    list(run(split, moons_mlp, settings(split), torch.device("cpu")))
    assert used == [3] * 5 + [5] * 5


def test_identical_reruns_and_exact_resume():
    split = tiny_split()
    s = settings(split, "max_entropy")
    full = list(run(split, moons_mlp, s, torch.device("cpu")))
    again = list(run(split, moons_mlp, s, torch.device("cpu")))
    resumed = full[:2] + list(run(split, moons_mlp, s, torch.device("cpu"), finished=full[:2]))

    def key(rounds):
        return [(r.round, r.n_labelled, r.test_accuracy, r.test_nll, r.acquired, r.scores) for r in rounds]

    assert key(again) == key(full)
    assert key(resumed) == key(full)


def test_validation_checks_stop_early_and_keep_the_best():
    split = tiny_split()
    labelled = initial_indices(split.pool_y, 3, 0)
    args = (split.pool_x[labelled], split.pool_y[labelled])
    torch.manual_seed(0)
    assert train(moons_mlp(), *args, TrainSettings(steps=2000), torch.Generator()) == 2000
    torch.manual_seed(0)
    early = TrainSettings(steps=2000, eval_every=10, patience=3)
    steps = train(moons_mlp(), *args, early, torch.Generator(), split.val_x, split.val_y)
    assert steps < 2000 and steps % 10 == 0


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
