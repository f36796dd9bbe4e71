"""What a model's prediction rests on, said the same way on every page and report.

RESEARCH_USE is printed beside every prediction (Predict, Inspect, the report).
"""

from __future__ import annotations

RESEARCH_USE = "Research use only, not for diagnosis."
