import pytest
import torch

from bal.inference import evaluate, predict_log_probs, predict_log_probs_naive
from bal.models import gal_cnn, moons_mlp


@pytest.mark.parametrize("make_model, shape, k", [(gal_cnn, (1, 28, 28), 5), (gal_cnn, (1, 28, 28), 100), (moons_mlp, (2,), 7)])
def test_batched_head_equals_k_full_passes(make_model, shape, k):
    torch.manual_seed(0)
    model = make_model()
    x = torch.randn(37, *shape)
    masks = model.head.draw_masks(k, torch.Generator().manual_seed(1))
    fast = predict_log_probs(model, x, k, masks=masks, batch_size=16)
    naive = predict_log_probs_naive(model, x, masks, batch_size=16)
    assert fast.shape == (37, k, model.head.fc2.out_features)
    assert torch.allclose(fast, naive, atol=1e-5)


def test_masks_are_consistent_across_the_pool_and_fresh_per_call():
    torch.manual_seed(0)
    model = moons_mlp()
    x = torch.randn(1, 2).repeat(6, 1)  # the same point six times
    g = torch.Generator().manual_seed(0)
    first = predict_log_probs(model, x, 8, g, batch_size=4)  # two chunks share the masks
    assert torch.allclose(first, first[:1].expand_as(first), atol=1e-6)  # same k -> same output everywhere
    assert not torch.allclose(first[0, 0], first[0, 1])  # different masks -> different outputs
    second = predict_log_probs(model, x, 8, g)
    assert not torch.allclose(first, second)


def test_log_probs_normalised_and_evaluate_range():
    torch.manual_seed(0)
    model = moons_mlp()
    x, y = torch.randn(20, 2), torch.randint(2, (20,))
    lp = predict_log_probs(model, x, 4, torch.Generator().manual_seed(0))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(20, 4), atol=1e-5)
    accuracy, nll = evaluate(model, x, y, 4, torch.Generator().manual_seed(0))
    assert 0 <= accuracy <= 1 and nll > 0
