"""The self-supervised losses against hand computations (ecgcore/ssl/losses.py)."""

from __future__ import annotations

import math

import pytest
import torch

from ecgcore.ssl.losses import clocs_loss, masked_mse, nt_xent

E = math.e


def _nt_xent_by_loops(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """SimCLR eq. 1 written out anchor by anchor: an independent check of the vectorised form."""
    u = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).tolist()
    n2 = len(u)
    sim = [[sum(a * b for a, b in zip(u[i], u[j])) / temperature for j in range(n2)] for i in range(n2)]
    total = 0.0
    for i in range(n2):
        positive = (i + n2 // 2) % n2
        denominator = sum(math.exp(sim[i][k]) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim[i][positive]) / denominator)
    return total / n2


def test_nt_xent_on_four_hand_made_vectors() -> None:
    # Two samples, two views: u = [e1, e2, e1, -e2] once normalised (the lengths must not matter).
    z1 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[0.5, 0.0], [0.0, -4.0]])
    # Temperature 0.5 doubles every cosine. Anchor e1 (either view): positive cos 1, negatives
    # cos 0 and 0 -> -log(e^2 / (e^2 + 2)). Anchor e2 / -e2: positive cos -1, negatives 0, 0
    # -> -log(e^-2 / (e^-2 + 2)) = log(1 + 2e^2). Mean over the four anchors:
    expected = (math.log((E**2 + 2) / E**2) + math.log(1 + 2 * E**2)) / 2
    assert nt_xent(z1, z2, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)
    assert nt_xent(z2, z1, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_matches_the_anchor_by_anchor_formula_and_rewards_agreeing_views() -> None:
    generator = torch.Generator().manual_seed(3)
    z1 = torch.randn(6, 5, generator=generator)
    z2 = torch.randn(6, 5, generator=generator)
    assert nt_xent(z1, z2, 0.2).item() == pytest.approx(_nt_xent_by_loops(z1, z2, 0.2), rel=1e-5)
    assert nt_xent(z1, z1 + 0.01 * z2, 0.2) < nt_xent(z1, z2, 0.2)


def test_nt_xent_back_propagates_and_refuses_bad_shapes() -> None:
    z1 = torch.randn(4, 3, requires_grad=True)
    nt_xent(z1, torch.randn(4, 3), 0.1).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent(torch.randn(1, 3), torch.randn(1, 3), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(4, 3), torch.randn(4, 3), 0.0)


def test_clocs_two_identical_views_by_hand() -> None:
    # Views equal: s = identity / temperature 1. Row and column softmaxes agree:
    # diagonal term -log(e / (e + 1)) = log(1 + 1/e); off-diagonal term log(1 + e).
    z = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 5.0]]])
    distinct = clocs_loss(z, torch.tensor([7, 8]), temperature=1.0)
    assert distinct.item() == pytest.approx(math.log(1 + 1 / E), rel=1e-6)
    # Same patient: the off-diagonal pair is a positive too; mean of the four term means.
    same = clocs_loss(z, torch.tensor([7, 7]), temperature=1.0)
    assert same.item() == pytest.approx((math.log(1 + 1 / E) + math.log(1 + E)) / 2, rel=1e-6)


def test_clocs_with_distinct_groups_is_the_reference_cross_view_loss() -> None:
    """Two views, every instance its own patient: CLOCS's reference code reduces to the mean of
    the row and the column cross entropies of the diagonal (negatives from the other view only)."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(5, 2, 4, generator=generator)
    u = torch.nn.functional.normalize(z, dim=2)
    sim = torch.exp(u[:, 0] @ u[:, 1].T / 0.1)
    diagonal = torch.diag(sim)
    expected = (-torch.log(diagonal / sim.sum(1)).mean() - torch.log(diagonal / sim.sum(0)).mean()) / 2
    assert clocs_loss(z, torch.arange(5), 0.1).item() == pytest.approx(expected.item(), rel=1e-5)


def test_clocs_averages_view_pairs_and_ignores_batch_order() -> None:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(6, 3, 4, generator=generator)
    group = torch.tensor([0, 0, 1, 2, 2, 2])
    pairs = [clocs_loss(z[:, [a, b]], group, 0.5) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert clocs_loss(z, group, 0.5).item() == pytest.approx(torch.stack(pairs).mean().item(), rel=1e-6)
    order = torch.tensor([5, 2, 0, 4, 1, 3])
    assert clocs_loss(z[order], group[order], 0.5).item() == pytest.approx(clocs_loss(z, group, 0.5).item(), rel=1e-6)


def test_clocs_rewards_views_of_one_patient_that_agree() -> None:
    generator = torch.Generator().manual_seed(2)
    base = torch.randn(8, 1, 16, generator=generator)
    agreeing = base + 0.05 * torch.randn(8, 2, 16, generator=generator)
    unrelated = torch.randn(8, 2, 16, generator=generator)
    group = torch.arange(8)
    assert clocs_loss(agreeing, group, 0.1) < clocs_loss(unrelated, group, 0.1)


def test_clocs_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="views"):
        clocs_loss(torch.randn(4, 1, 3), torch.arange(4), 0.1)
    with pytest.raises(ValueError, match="group"):
        clocs_loss(torch.randn(4, 2, 3), torch.arange(3), 0.1)


def test_masked_mse_counts_masked_elements_only() -> None:
    target = torch.zeros(2, 1, 4)
    pred = torch.tensor([[[1.0, 2.0, 100.0, 100.0]], [[3.0, -100.0, 100.0, 100.0]]])
    mask = torch.tensor([[[True, True, False, False]], [[True, False, False, False]]])
    # Masked: 1, 2 and 3 -> (1 + 4 + 9) / 3; the 100s are not masked and must not count.
    assert masked_mse(pred, target, mask).item() == pytest.approx(14 / 3)


def test_masked_mse_broadcasts_a_time_mask_over_leads_and_counts_each_lead() -> None:
    pred = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    target = torch.zeros(1, 3, 4)
    mask = torch.tensor([[[False, True, False, False]]])  # sample 1 of every lead
    expected = (1**2 + 5**2 + 9**2) / 3
    assert masked_mse(pred, target, mask).item() == pytest.approx(expected)


def test_masked_mse_gradient_flows_to_masked_elements_only() -> None:
    pred = torch.randn(2, 3, 5, requires_grad=True)
    mask = torch.zeros(2, 3, 1, dtype=torch.bool)
    mask[0, 1] = True
    masked_mse(pred, torch.zeros(2, 3, 5), mask).backward()
    assert pred.grad is not None
    assert (pred.grad[0, 1] != 0).all()
    pred.grad[0, 1] = 0
    assert (pred.grad == 0).all()


def test_masked_mse_with_nothing_masked_is_zero_not_nan() -> None:
    pred = torch.randn(2, 3, requires_grad=True)
    loss = masked_mse(pred, torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and (pred.grad == 0).all()


def test_masked_mse_refuses_a_non_boolean_mask_or_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="boolean"):
        masked_mse(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="differ"):
        masked_mse(torch.zeros(2, 3), torch.zeros(3, 2), torch.ones(2, 3, dtype=torch.bool))
