"""From probabilities to calls: the run's tuned thresholds, rhythms one ECG cannot have at
once, and what the record's own header says beside the model's calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgcore.views.calls import (
    DEFAULT_THRESHOLD, Call, make_calls, rhythm_conflict, run_thresholds,
)
from ecgcore.data.labels import CONCEPTS, class_name
from ecgcore.data.labels.rhythms import EXCLUSIVE_RHYTHMS, is_exclusive_rhythm
from ecgcore.data.wfdbio import read_header
from ecgcore.views.record_facts import RecordFacts, facts_from_comments

NSR, SB, STACH, AF, RBBB = "426783006", "426177001", "427084000", "164889003", "713427006|59118001"


def test_thresholds_come_from_results_json_and_say_so() -> None:
    results = {"test": {"thresholds": {NSR: 0.62, SB: 0.2}}}
    tuned = run_thresholds(results, [NSR, SB])
    assert tuned[NSR] == 0.62 and tuned[SB] == 0.2
    assert tuned.source == "tuned on validation"
    assert "tuned on validation" in tuned.note and "0.5" not in tuned.note
    partly = run_thresholds(results, [NSR, SB, AF])
    assert partly[AF] == DEFAULT_THRESHOLD
    assert partly.source == "tuned on validation (0.5 for 1 class without a tuned threshold)"
    old = run_thresholds({"test": {}}, [NSR])
    assert old[NSR] == 0.5 and old.source == "0.5 (no tuned thresholds in results.json)"
    assert run_thresholds(None, [NSR]).source == old.source


def test_calls_use_each_class_threshold() -> None:
    thresholds = run_thresholds({"test": {"thresholds": {NSR: 0.62, SB: 0.2, AF: 0.9}}}, [NSR, SB, AF])
    calls = make_calls({NSR: 0.6, SB: 0.3, AF: 0.85}, thresholds)
    assert [c.code for c in calls] == [AF, NSR, SB]  # most probable first
    assert {c.code: c.called for c in calls} == {NSR: False, SB: True, AF: False}
    assert calls[0] == Call(AF, 0.85, 0.9)


def test_exclusive_rhythms_are_data_in_the_label_room() -> None:
    assert {NSR, SB, STACH, AF} <= set(EXCLUSIVE_RHYTHMS)
    assert set(EXCLUSIVE_RHYTHMS) <= set(CONCEPTS)  # SNOMED codes the label space knows
    assert "427393009" not in EXCLUSIVE_RHYTHMS  # sinus arrhythmia qualifies a sinus rhythm
    assert is_exclusive_rhythm(NSR) and not is_exclusive_rhythm(RBBB)


def test_two_rhythms_called_at_once_are_a_conflict() -> None:
    thresholds = run_thresholds({"test": {"thresholds": {NSR: 0.4, SB: 0.4, RBBB: 0.3, STACH: 0.5}}},
                                [NSR, SB, RBBB, STACH])
    # E07500 as reported: sinus rhythm and sinus bradycardia both "yes".
    conflict = rhythm_conflict(make_calls({NSR: 0.55, SB: 0.81, RBBB: 0.7, STACH: 0.1}, thresholds))
    assert conflict is not None
    assert [c.code for c in conflict.calls] == [SB, NSR]
    assert conflict.most_probable.code == SB
    sentence = conflict.sentence()
    assert class_name(SB) in sentence and class_name(NSR) in sentence
    assert "exclude each other" in sentence and f"most probable rhythm is {class_name(SB)}" in sentence
    assert rhythm_conflict(make_calls({NSR: 0.55, SB: 0.3, RBBB: 0.7, STACH: 0.1}, thresholds)) is None


def test_record_facts_from_a_challenge_header(shared_data: Path) -> None:
    header = read_header(shared_data / "ecg" / "cinc2021" / "G12EC" / "E00005.hea")
    facts = facts_from_comments(header.comments)
    assert facts == RecordFacts(age=83.0, sex="M", diagnoses=("59118001", "164889003"),
                                where="the record's header")
    line = facts.line()
    assert "age 83" in line and "male" in line
    assert "RBBB — right bundle branch block" in line and "AF — atrial fibrillation" in line
    assert facts_from_comments(["Rx: Unknown"]) is None
    unknown = facts_from_comments(["Age: NaN", "Sex: Unknown", "Dx: 999"])
    assert unknown is not None and unknown.age is None and unknown.sex == ""
    assert "999" in unknown.line()  # an unknown code is shown as itself


@pytest.mark.parametrize("comments, age", [(["<age>: 51", "<sex>: F"], 51.0), (["Age: 74"], 74.0)])
def test_record_facts_spellings(comments, age) -> None:
    facts = facts_from_comments(comments)
    assert facts is not None and facts.age == age and facts.diagnoses == ()
