"""PTB-XL-style `strat_fold`: patient-disjoint folds stratified over labels.

PTB-XL assigns its ten folds so that all records of a patient share a fold and
every label is spread evenly (Wagner et al. 2020, after Sechidis et al.'s
iterative stratification). This is a small greedy version of the same idea:
patients holding the rarest labels are placed first, each into the fold where
its labels are currently least represented relative to their target share.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np


def stratified_patient_folds(patient_ids: Sequence[Hashable],
                             label_sets: Sequence[Sequence[str]],
                             n_folds: int = 10, seed: int = 0) -> list[int]:
    """Fold number (1..n_folds) for each record; records of a patient share a fold."""
    if len(patient_ids) != len(label_sets):
        raise ValueError("patient_ids and label_sets must have the same length")
    records: dict[Hashable, list[int]] = defaultdict(list)
    labels: dict[Hashable, Counter[str]] = defaultdict(Counter)
    for i, (pid, codes) in enumerate(zip(patient_ids, label_sets)):
        records[pid].append(i)
        labels[pid].update(sorted(set(codes)))  # sorted: no hash-seed dependent order
    totals: Counter[str] = Counter()
    for counter in labels.values():
        totals.update(counter)
    share = {label: count / n_folds for label, count in totals.items()}

    rng = np.random.default_rng(seed)
    patients = list(records)
    tiebreak = {pid: float(r) for pid, r in zip(patients, rng.random(len(patients)))}

    def rarest(pid: Hashable) -> tuple[float, float]:
        counts = [totals[label] for label in labels[pid]] or [len(patient_ids) + 1]
        return (float(min(counts)), tiebreak[pid])

    fold_labels = [Counter() for _ in range(n_folds)]
    fold_sizes = np.zeros(n_folds)
    target_size = len(patient_ids) / n_folds
    fold_of: dict[Hashable, int] = {}
    for pid in sorted(patients, key=rarest):
        scores = np.array([
            sum((fold_labels[f][label] + k) / share[label] for label, k in labels[pid].items())
            + (fold_sizes[f] + len(records[pid])) / target_size
            for f in range(n_folds)
        ])
        best = int(np.flatnonzero(scores == scores.min())[0])
        fold_of[pid] = best
        fold_labels[best].update(labels[pid])
        fold_sizes[best] += len(records[pid])
    out = [0] * len(patient_ids)
    for pid, idx in records.items():
        for i in idx:
            out[i] = fold_of[pid] + 1
    return out
