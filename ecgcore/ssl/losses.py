"""Self-supervised losses, as pure functions of embeddings (or reconstructions) and return a
scalar tensor that back-propagates.

- `nt_xent`: SimCLR's normalised temperature-scaled cross entropy (Chen et al. 2020, eq. 1):
  two views of N samples, cosine similarity over temperature, each of the 2N embeddings an
  anchor whose positive is its other view and whose 2N - 2 negatives are every other embedding
  of both views; the mean over the 2N anchors.
- `clocs_loss`: CLOCS (Kiyasseh, Zhu & Clifton, ICML 2021), the CMSC / CMLC / CMSMLC loss of its
  code (danikiyasseh/CLOCS, prepare_miscellaneous.py `obtain_contrastive_loss`). Which variant
  it is depends only on what the V views are (adjacent segments: CMSC; leads: CMLC; both:
  CMSMLC); the loss is the same. See its docstring for the formulation and the two places it
  departs from that code.
- `masked_mse`: the mean squared error over the masked elements only (MAE-style reconstruction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent for two views z1, z2 of shape (N, D), row i of each from sample i.

    With u the 2N L2-normalised embeddings [z1; z2] and s_ij = u_i . u_j / temperature, anchor i
    (positive p(i) = i +- N) contributes -log(exp(s_i,p(i)) / sum_{k != i} exp(s_ik)); the loss is
    the mean over the 2N anchors."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"nt_xent takes two (N, D) tensors of one shape; got {tuple(z1.shape)}, {tuple(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"nt_xent needs at least 2 samples (one negative pair); got {z1.shape[0]}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature!r}")
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = u @ u.T / temperature
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, positives)


def clocs_loss(z: torch.Tensor, group: torch.Tensor, temperature: float) -> torch.Tensor:
    """CLOCS's contrastive loss for z of shape (N, V, D): V views of each of N instances, and
    `group` (N,) the recording or patient id of each instance.

    For every pair of views (a, b), a < b, s_rc = cos(z[r, a], z[c, b]) / temperature is an N x N
    matrix whose rows are view a's anchors and whose columns are view b's. Positives are the
    pairs of one group: the diagonal (two views of one instance) and the off-diagonal pairs with
    group[r] == group[c] (other instances of the same patient / recording); negatives are the
    other column (or row) entries, i.e. cross-view only (unlike NT-Xent, no negatives within a
    view). With row terms l_row(r, c) = -log(exp s_rc / sum_k exp s_rk) and column terms
    l_col(r, c) = -log(exp s_rc / sum_k exp s_kc), the pair's loss is the average of the terms'
    means: mean over the diagonal of l_row, of l_col, and, when same-group off-diagonal pairs
    exist, mean over them of l_row and of l_col; the loss is the mean over the view pairs.

    Departures from the reference code, both deliberate: (1) the reference takes the
    off-diagonal positives with row terms above the diagonal and column terms below it only
    ("technically need to add 1 more term for symmetry", its comment); here both terms use every
    off-diagonal positive, so the loss does not depend on the order of the batch; (2) with more
    than two views the reference overwrites the loss for each view pair (`loss = ...`) and then
    divides by the pair count; here the pairs are averaged. With two views and distinct groups
    both agree with the reference exactly (its temperature is 0.1)."""
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(f"clocs_loss takes (N, V, D) embeddings with V >= 2 views; got {tuple(z.shape)}")
    if group.shape != (z.shape[0],):
        raise ValueError(f"clocs_loss: group must have shape ({z.shape[0]},); got {tuple(group.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature!r}")
    n, views, _ = z.shape
    u = F.normalize(z, dim=2)
    group = group.to(u.device)
    same_group = group.unsqueeze(0) == group.unsqueeze(1)
    diagonal = torch.eye(n, dtype=torch.bool, device=u.device)
    off_diagonal = same_group & ~diagonal
    pair_losses = []
    for a in range(views):
        for b in range(a + 1, views):
            logits = u[:, a] @ u[:, b].T / temperature
            row = -logits.log_softmax(dim=1)
            column = -logits.log_softmax(dim=0)
            terms = [row[diagonal].mean(), column[diagonal].mean()]
            if off_diagonal.any():
                terms += [row[off_diagonal].mean(), column[off_diagonal].mean()]
            pair_losses.append(torch.stack(terms).mean())
    return torch.stack(pair_losses).mean()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (pred - target)^2 over the elements where mask is True (masked), the others
    ignored. `mask` is boolean and broadcasts to pred's shape (e.g. (B, 1, T) masks a time span
    of every lead, (B, L, 1) whole leads); each element of pred it covers counts once. No
    masked element gives 0 (still attached to the graph), not NaN."""
    if pred.shape != target.shape:
        raise ValueError(f"masked_mse: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask.dtype != torch.bool:
        raise ValueError(f"masked_mse: mask must be boolean (True = masked); got {mask.dtype}")
    mask = mask.to(pred.device).expand_as(pred)
    squared = (pred - target).pow(2).masked_fill(~mask, 0.0)
    return squared.sum() / mask.sum().clamp_min(1)
