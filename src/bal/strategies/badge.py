"""BADGE (Ash et al. 2020): k-means++ seeding on the last layer's gradient embeddings, so that the
batch is both uncertain (long gradients) and diverse (far apart). Needs no MC samples: it looks at
the deterministic (dropout off) prediction and the last hidden layer."""

from __future__ import annotations

import torch

from bal.strategies import CandidateBatch, Strategy


def kmeans_plus_plus(embeddings_N_E: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                     chunk: int = 4096) -> list[int]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), as BADGE uses it: the first point has the
    largest norm, each next one is drawn with probability proportional to its squared distance to
    the nearest point chosen so far, so a chosen point (distance 0) is never drawn again while
    others remain. Distances are taken as differences, ``chunk`` rows at a time (no cancellation,
    no N x E copy)."""
    chosen = [int(torch.linalg.vecdot(embeddings_N_E, embeddings_N_E).argmax())]
    nearest_N = torch.full((len(embeddings_N_E),), torch.inf, dtype=torch.float64)
    for _ in range(1, batch_size):
        centre_E = embeddings_N_E[chosen[-1]]
        distance_N = torch.cat([(embeddings_N_E[start : start + chunk] - centre_E).pow(2).sum(dim=1)
                                for start in range(0, len(embeddings_N_E), chunk)]).double()
        nearest_N = torch.minimum(nearest_N, distance_N)
        if nearest_N.sum() > 0:
            chosen.append(int(torch.multinomial(nearest_N, 1, generator=generator)))
        else:  # every remaining point coincides with a chosen one: any of them
            remaining_R = torch.ones(len(nearest_N), dtype=torch.bool)
            remaining_R[chosen] = False
            options_R = remaining_R.nonzero().squeeze(1)
            chosen.append(int(options_R[torch.randint(len(options_R), (1,), generator=generator)]))
    return chosen


def gradient_embeddings(dropout_off_probs_N_C: torch.Tensor, features_N_H: torch.Tensor) -> torch.Tensor:
    """BADGE's embedding (Ash et al. 2020): the gradient of the cross-entropy with respect to the last
    layer's weights under the model's own predicted label, (p(x) - e_yhat) outer h(x), as ``N x (C*H)``."""
    residual_N_C = dropout_off_probs_N_C.clone()
    residual_N_C[torch.arange(len(residual_N_C)), residual_N_C.argmax(dim=1)] -= 1.0
    return (residual_N_C[:, :, None] * features_N_H[:, None, :]).flatten(1)


def select(
    dropout_off_probs_N_C: torch.Tensor, features_N_H: torch.Tensor, batch_size: int, generator: torch.Generator | None
) -> CandidateBatch:
    """BADGE: k-means++ seeding on the gradient embeddings, so the batch is both uncertain (long
    gradients) and diverse (far apart). Scores: the embeddings' norms."""
    embeddings_N_E = gradient_embeddings(dropout_off_probs_N_C, features_N_H)
    chosen = kmeans_plus_plus(embeddings_N_E, batch_size, generator)
    return CandidateBatch(chosen, embeddings_N_E[chosen].norm(dim=1).tolist())


STRATEGY = Strategy("#999999", "d", selector=select, inputs=("dropout_off_probs_N_C", "features_N_H"))
