"""Before a launch: how many of the target's recordings the source dataset also holds.

A run's own check (results.json "leakage") compares the records its source model was
trained on with the run's test split. Before submitting, neither exists yet, so the
Launch page compares the datasets on disk: every record of the source (its training
split will be most of it) against every record of the target (any of them may fall
in a test split). The count is therefore an upper bound of what a run's test split
can hold; the run reports the exact figure. Records are matched by name
(`ecgcore.data.identity.public_id`, the same dataset name and id) and, when `signals`,
by signal fingerprint, which reads every record once (then cached per dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecgcore.data.identity import dataset_fingerprints, uncached_fingerprints
from ecgcore.data.recordset import Recordset
from ecgcore.transfer.leakage import LeakageReport, leakage_report

#: Records to fingerprint beyond which the page asks before reading them all.
READ_WITHOUT_ASKING = 5000
SCOPE = ("whole source against every target record: an upper bound of what a run's test split can "
         "hold (the run's results.json gives the exact count)")


@dataclass(frozen=True)
class DatasetOverlap:
    report: LeakageReport  # n_test = the target's records
    signals_checked: bool

    @property
    def n_overlap(self) -> int:
        return len(self.report.overlap)

    def summary(self) -> str:
        """One line for the page."""
        target, n = self.report.target_dataset, self.report.n_test
        if not self.n_overlap:
            how = "by name or signal" if self.signals_checked else "by name (signals not compared yet)"
            return f"None of the {n} records of {target} is in the source dataset ({how})."
        parts = [f"{_by_name(self.report)} by name"]
        if self.signals_checked:
            parts.append(f"{self.report.by_rule['fingerprint']} by signal")
        else:
            parts.append("signals not compared yet")
        return (f"**{self.n_overlap}** of the {n} records of {target} are also in the source dataset "
                f"({', '.join(parts)}): runs tested on them score optimistically. Leave them out of the "
                f"source (data.exclude_sources for Challenge data) or choose another pair.")


def _by_name(report: LeakageReport) -> int:
    return len({m["record"] for m in report.matches if {"same_id", "public_id"} & set(m["rules"])})


def records_to_fingerprint(source: Recordset, target: Recordset, cache_dir: Path | str | None = None) -> int:
    """How many records a signal comparison would read now (0 when all are cached)."""
    return uncached_fingerprints(source, cache_dir) + uncached_fingerprints(target, cache_dir)


def dataset_overlap(source: Recordset, target: Recordset, signals: bool = True,
                    cache_dir: Path | str | None = None) -> DatasetOverlap:
    """The target's records that the source dataset holds (see the module docstring)."""
    source_prints = target_prints = None
    if signals:
        source_prints = {source.name: dataset_fingerprints(source, cache_dir)}
        target_prints = dataset_fingerprints(target, cache_dir)
    report = leakage_report({source.name: source.record_ids}, target.name, target.record_ids,
                            target_layout=target.layout, source_layouts={source.name: source.layout},
                            source_fingerprints=source_prints, target_fingerprints=target_prints)
    return DatasetOverlap(report, signals)
