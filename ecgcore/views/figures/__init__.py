"""Plotly figures the app and reports share (pure functions: arrays in, figures out)."""

from ecgcore.views.figures.ecg_paper import ecg_paper_figure

__all__ = ["ecg_paper_figure"]
