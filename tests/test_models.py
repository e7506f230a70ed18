import math

import pytest
import torch

from bal.inference import evaluate, predict_log_probs, predict_log_probs_naive
from bal.models import cnn, keras_init, mlp


def gal_cnn():
    return cnn((1, 28, 28), 10)


def moons_mlp():
    return mlp((2,), 2, 64, 0.25, 0.25)


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


def test_log_probs_are_the_log_softmax_of_hand_computed_logits():
    """A 2-2-2-2 net with set weights and three set masks (rate 0.5: kept units are doubled): the
    logits of every input under every mask are worked out by hand below, relu cut included."""
    model = mlp((2,), 2, hidden=2, p_in=0.5, p_hidden=0.5)
    with torch.no_grad():
        model.trunk[0].weight.copy_(torch.eye(2)), model.trunk[0].bias.zero_()  # features = relu(x) = x here
        model.head.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # pre = (a, a + b - 2)
        model.head.fc1.bias.copy_(torch.tensor([0.0, -2.0]))
        model.head.fc2.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 2.0]]))  # logits = (u - v + 0.5, 2 v)
        model.head.fc2.bias.copy_(torch.tensor([0.5, 0.0]))
    mask_in_K_D = torch.tensor([[2.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    mask_hidden_K_H = torch.tensor([[2.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    x = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]])
    logits_N_K_C = torch.tensor([
        # x = (1, 2): masked input (2, 4) | (2, 0) | (0, 4) -> hidden (2, 4) | (2, 0) | (0, 2) -> x mask (4, 8) | (4, 0) | (0, 4)
        [[-3.5, 16.0], [4.5, 0.0], [-3.5, 8.0]],
        # x = (3, 1): (6, 2) | (6, 0) | (0, 2) -> (6, 6) | (6, 4) | (0, 0) -> (12, 12) | (12, 0) | (0, 0)
        [[0.5, 24.0], [12.5, 0.0], [0.5, 0.0]],
        # x = (0.5, 0.5): (1, 1) | (1, 0) | (0, 1) -> (1, 0) | (1, relu(-1) = 0) | (0, relu(-1) = 0) -> (2, 0) | (2, 0) | (0, 0)
        [[2.5, 0.0], [2.5, 0.0], [0.5, 0.0]],
    ], dtype=torch.float64)
    expected = logits_N_K_C - torch.logsumexp(logits_N_K_C, dim=-1, keepdim=True)
    for batch_size in (1, 250):
        lp = predict_log_probs(model, x, 3, masks=(mask_in_K_D, mask_hidden_K_H), batch_size=batch_size)
        assert lp.shape == (3, 3, 2)
        assert torch.allclose(lp.double(), expected, atol=1e-6)
    # drawn from a generator, the masks are the head's own draw with it
    g_masks = model.head.draw_masks(5, torch.Generator().manual_seed(3))
    assert torch.equal(predict_log_probs(model, x, 5, torch.Generator().manual_seed(3)),
                       predict_log_probs(model, x, 5, masks=g_masks))


def test_evaluate_scores_the_mc_averaged_and_the_dropout_off_prediction():
    """A model whose K samples give class 1 the logit +1.7 or -6.3, by whether the hidden dropout mask
    (rate 0.25) keeps its one unit, and -0.3 with dropout off: both predictions are known in closed
    form, and they disagree (the MC average says class 1, the deterministic net class 0)."""
    model = mlp((2,), 2, hidden=1, p_in=0.5, p_hidden=0.25)
    with torch.no_grad():
        for layer in (model.trunk[0], model.head.fc1):
            layer.weight.zero_(), layer.bias.fill_(1.0)  # every hidden unit is 1 (before dropout)
        model.head.fc2.weight.copy_(torch.tensor([[0.0], [6.0]]))  # class 1's logit: 6 x hidden - 6.3
        model.head.fc2.bias.copy_(torch.tensor([0.0, -6.3]))
    x = torch.zeros(8, 2)
    y = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0])
    k = 64
    masks = model.head.draw_masks(k, torch.Generator().manual_seed(0))
    kept = (masks[1][:, 0] > 0).double()  # kept: the unit is scaled to 4/3, logit 1.7; dropped: logit -6.3
    p1 = (kept * torch.sigmoid(torch.tensor(1.7, dtype=torch.float64))
          + (1 - kept) * torch.sigmoid(torch.tensor(-6.3, dtype=torch.float64))).mean().item()
    assert p1 > 0.5
    accuracy, nll, accuracy_dropout_off = evaluate(model, x, y, k, torch.Generator().manual_seed(0))
    assert accuracy == 3 / 8  # the MC average: class 1 everywhere
    assert nll == pytest.approx(-(3 * math.log(p1) + 5 * math.log(1 - p1)) / 8, rel=1e-5)
    assert accuracy_dropout_off == 5 / 8  # logit -0.3 < 0: class 0 everywhere


@pytest.mark.parametrize("make_model", [gal_cnn, moons_mlp])  # gal_cnn's rates differ (0.25, 0.5): a swap shows
def test_training_dropout_rates_equal_the_inference_masks_rates(make_model):
    torch.manual_seed(0)
    head = make_model().head
    d, h = head.fc1.in_features, head.fc1.out_features
    with torch.no_grad():
        head.fc1.weight.zero_(), head.fc1.bias.fill_(1.0)  # every hidden unit 1 before its dropout
    seen = {}
    head.fc1.register_forward_hook(lambda m, inputs, out: seen.update(fc1=inputs[0]))
    head.fc2.register_forward_hook(lambda m, inputs, out: seen.update(fc2=inputs[0]))
    head.train()
    head(torch.ones(4000, d))
    mask_in_K_D, mask_hidden_K_H = head.draw_masks(4000, torch.Generator().manual_seed(0))
    for name, mask, p in (("fc1", mask_in_K_D, head.p_in), ("fc2", mask_hidden_K_H, head.p_hidden)):
        trained = (seen[name] == 0).double().mean().item()
        inferred = (mask == 0).double().mean().item()
        assert trained == pytest.approx(p, abs=0.01) and inferred == pytest.approx(p, abs=0.01), name


def test_keras_initialisation_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    model = keras_init(gal_cnn())
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert len(layers) == 4
    for layer in layers:
        w = layer.weight
        receptive = w[0, 0].numel() if w.ndim == 4 else 1
        bound = math.sqrt(6 / ((w.shape[0] + w.shape[1]) * receptive))  # Glorot & Bengio 2010
        assert torch.all(layer.bias == 0)
        assert w.abs().max().item() <= bound and w.abs().max().item() > 0.95 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)  # uniform(-b, b) has std b / sqrt(3)
