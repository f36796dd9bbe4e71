"""What a record says about its patient, shown beside the model's calls: age, sex and the
diagnoses recorded with it (a WFDB header's `# Age:`, `# Sex:`, `# Dx:` comments, or the
dataset's own table for a test record). Diagnoses are SNOMED CT codes where the source
gives codes, shown by name; anything else is shown as written."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ecgcore.data.labels import class_name
from ecgcore.data.wfdb_comments import challenge_fields, comment_fields

SEX_NAMES = {"M": "male", "F": "female"}


@dataclass(frozen=True)
class RecordFacts:
    """Age in years (None: unknown), sex ("M", "F" or "" unknown), recorded diagnoses,
    and where they were read (e.g. "the record's header")."""

    age: float | None
    sex: str
    diagnoses: tuple[str, ...]
    where: str

    @property
    def diagnosis_names(self) -> list[str]:
        return [class_name(code) for code in self.diagnoses]

    def line(self) -> str:
        """One sentence: "From the record's header: age 83 · male · recorded diagnoses: …"."""
        age = "age unknown" if self.age is None else f"age {self.age:g}"
        sex = SEX_NAMES.get(self.sex, "sex unknown")
        dx = "; ".join(self.diagnosis_names) or "none recorded"
        return f"From {self.where}: {age} · {sex} · recorded diagnoses: {dx}"

    def facts(self) -> dict[str, str]:
        """Key-value lines for the report."""
        return {"age": "unknown" if self.age is None else f"{self.age:g}",
                "sex": SEX_NAMES.get(self.sex, "unknown"),
                f"recorded diagnoses ({self.where})": "; ".join(self.diagnosis_names) or "none"}


def facts_from_comments(comments: Sequence[str]) -> RecordFacts | None:
    """Age, sex and Dx from header comments (`#Age:`, `# Sex:`, LUDB's `#<age>:`); None when
    the header has none of them."""
    fields = comment_fields(comments)
    if not {"age", "sex", "dx"} & set(fields):
        return None
    parsed = challenge_fields(comments)
    age = None if math.isnan(parsed.age) else float(parsed.age)
    return RecordFacts(age=age, sex=parsed.sex, diagnoses=parsed.dx, where="the record's header")
