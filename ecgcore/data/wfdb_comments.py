"""Header comment fields: PhysioNet/CinC Challenge `#Age:`/`#Sex:`/`#Dx:` and friends.

Separate from `wfdbio` so it stays small; `wfdbio` re-exports everything here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


def comment_fields(comments: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`Key: value` comment lines as {key: value}; keys lower-cased and stripped of
    angle brackets, so `#Age: 74`, `# Age: 74` and LUDB's `#<age>: 51` all give
    {"age": "74"}. The first occurrence of a key wins."""
    fields: dict[str, str] = {}
    for line in comments:
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().strip("<>").strip().lower()
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


@dataclass(frozen=True)
class ChallengeFields:
    """The PhysioNet/CinC Challenge comment fields of one header."""

    age: float
    sex: str
    dx: tuple[str, ...]
    has_dx: bool


_SEX: dict[str, str] = {"m": "M", "male": "M", "f": "F", "female": "F"}


def non_negative_number(value: Any) -> float:
    """A header field or CSV cell as a finite number >= 0; NaN for "NaN", "Unknown",
    None, empty, negative or anything non-numeric (readers use it for ages and rates)."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) and number >= 0 else math.nan


def parse_age(text: Any) -> float:
    """Years as float; NaN when unknown (see `non_negative_number`)."""
    return non_negative_number(text)


def parse_sex(text: str) -> str:
    """"M", "F" or "" (unknown)."""
    return _SEX.get(text.strip().lower(), "")


def challenge_fields(comments: tuple[str, ...] | list[str]) -> ChallengeFields:
    """Age, sex and Dx codes from `#Age:`, `#Sex:`, `#Dx:` (space after '#' optional)."""
    fields = comment_fields(comments)
    dx_text = fields.get("dx", "")
    codes = tuple(c.strip() for c in re.split(r"[,;]", dx_text) if c.strip())
    return ChallengeFields(age=parse_age(fields.get("age", "")), sex=parse_sex(fields.get("sex", "")),
                           dx=codes, has_dx="dx" in fields)
