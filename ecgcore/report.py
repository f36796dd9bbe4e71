"""A one-page printable report (PDF or PNG) of a record with its predictions and saliency.

Why matplotlib: the app's figures are Plotly, but Plotly needs kaleido (not installed)
to write files. The report therefore takes the very same `ecg_paper_figure` (so the
paper geometry, lead layout and saliency band are the ones on screen, in millimetres)
and draws its traces with matplotlib onto an A4 landscape page, with the ECG paper
placed at true scale: printed at 100 %, one small square is 1 mm, 25 mm/s and 10 mm/mV.

`saliency_on_signal` maps an attribution computed on the run's preprocessed window
(the run's rate, its crop) back onto the samples of the original record, so the band
can be drawn on the tracing in millivolts rather than on a normalised signal.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ecgcore.data.labels import class_name
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.prepare.signal_ops import lead_indices, resampled_length
from ecgcore.data.recordset import Signal
from ecgcore.errors import EcgcoreError
from ecgcore.figures import ecg_paper_figure
from ecgcore.figures.ecg_paper import MAJOR_MM, MINOR_MM, PAGE_HEIGHT_MM, PAGE_WIDTH_MM

MM_PER_INCH = 25.4
PAGE_MM = (297.0, 210.0)  # A4 landscape
PAPER_LEFT_MM = (PAGE_MM[0] - PAGE_WIDTH_MM) / 2
PAPER_BOTTOM_MM = 6.0
FORMATS = ("pdf", "png")
PNG_DPI = 150
MAX_PREDICTION_ROWS = 8
METHOD_NAMES = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "occlusion": "Occlusion"}


@dataclass(frozen=True)
class Prediction:
    """One class on the report: code, probability, the run's threshold, true label if known."""

    code: str
    probability: float
    threshold: float = 0.5
    true: bool | None = None


@dataclass(frozen=True)
class ReportContent:
    """What one report page shows."""

    title: str
    signal: Signal
    predictions: Sequence[Prediction]
    saliency: np.ndarray | None = None          # same shape as signal.data, or None
    saliency_caption: str = ""
    lead_importance: Mapping[str, float] | None = None
    facts: Mapping[str, str] = field(default_factory=dict)
    start: float = 0.0


def saliency_on_signal(attribution: np.ndarray, attribution_leads: Sequence[str],
                       prep: PrepConfig, signal: Signal) -> np.ndarray:
    """An attribution over the run's window (len(prep.leads) x window at prep.fs) placed on
    the original record's samples and leads: each record sample takes the value of the
    window sample covering its time (the window's crop offset included); samples outside
    the window and leads the run does not use get 0."""
    values = np.asarray(attribution, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(attribution_leads):
        raise EcgcoreError(f"attribution has shape {values.shape}; expected "
                           f"({len(attribution_leads)}, samples)")
    n_in = signal.data.shape[1]
    n_run = resampled_length(n_in, signal.fs, prep.fs, prep.resample)
    length = values.shape[1]
    start = (n_run - length) // 2 if prep.crop == "centre" and n_run > length else 0
    valid = min(n_run - start, length)
    index = np.floor(np.arange(n_in) * prep.fs / signal.fs).astype(np.int64) - start
    inside = (index >= 0) & (index < valid)
    out = np.zeros(signal.data.shape, dtype=np.float32)
    rows = lead_indices(tuple(attribution_leads), tuple(signal.leads))
    for lead, row in enumerate(rows):
        if row >= 0:
            out[lead, inside] = values[row, index[inside]]
    return out


def _split_nan(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Pieces of a NaN-separated polyline as (n, 2) arrays."""
    breaks = np.flatnonzero(~np.isfinite(x) | ~np.isfinite(y))
    pieces: list[np.ndarray] = []
    for part in np.split(np.arange(len(x)), breaks):
        part = part[np.isfinite(x[part]) & np.isfinite(y[part])]
        if len(part) > 1:
            pieces.append(np.column_stack([x[part], y[part]]))
    return pieces


def _draw_paper(ax: object, content: ReportContent) -> None:
    """The on-screen ECG figure's traces, bands and labels, drawn in paper millimetres."""
    data = content.signal
    fig = ecg_paper_figure(data.data, data.fs, data.leads, saliency=content.saliency,
                           start=content.start)
    ax.set_xlim(0, PAGE_WIDTH_MM)
    ax.set_ylim(0, PAGE_HEIGHT_MM)
    ax.set_facecolor(fig.layout.plot_bgcolor)
    for step, colour, width in ((MINOR_MM, fig.layout.xaxis.minor.gridcolor, 0.25),
                                (MAJOR_MM, fig.layout.xaxis.gridcolor, 0.5)):
        xs = np.arange(0.0, PAGE_WIDTH_MM + 1e-6, step)
        ys = np.arange(0.0, PAGE_HEIGHT_MM + 1e-6, step)
        lines = [[(x, 0.0), (x, PAGE_HEIGHT_MM)] for x in xs]
        lines += [[(0.0, y), (PAGE_WIDTH_MM, y)] for y in ys]
        ax.add_collection(LineCollection(lines, colors=colour, linewidths=width, zorder=0))
    for trace in fig.data:
        x = np.asarray(trace.x, dtype=np.float64)
        y = np.asarray(trace.y, dtype=np.float64)
        if trace.fill == "toself":
            for piece in _split_nan(x, y):
                ax.fill(piece[:, 0], piece[:, 1], color="#ff8c00", alpha=0.4, lw=0, zorder=1)
        else:
            ax.add_collection(LineCollection(_split_nan(x, y), colors=trace.line.color or "#111111",
                                             linewidths=0.6, zorder=2))
    for note in fig.layout.annotations:
        ax.text(note.x, note.y, note.text, ha=note.xanchor or "left",
                va={"middle": "center"}.get(note.yanchor, note.yanchor or "center"),
                fontsize=7 if note.xanchor == "right" else 8, color=note.font.color or "#111111",
                zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(fig.layout.xaxis.gridcolor)


def _prediction_lines(predictions: Sequence[Prediction]) -> list[str]:
    """Highest probabilities first (true labels always listed), as fixed-width lines."""
    ordered = sorted(predictions, key=lambda p: -p.probability)
    shown = ordered[:MAX_PREDICTION_ROWS]
    shown += [p for p in ordered[MAX_PREDICTION_ROWS:] if p.true][: MAX_PREDICTION_ROWS]
    known = any(p.true is not None for p in predictions)
    lines = ["prob.  call  " + ("true  " if known else "") + "class"]
    for p in shown:
        call = "yes " if p.probability >= p.threshold else "no  "
        truth = ("yes   " if p.true else "no    ") if known else ""
        lines.append(f"{p.probability:5.3f}  {call}  {truth}{class_name(p.code)[:60]}")
    hidden = len(ordered) - len(shown)
    if hidden:
        lines.append(f"… {hidden} more classes with lower probabilities")
    return lines


def _draw_header(fig: Figure, content: ReportContent) -> None:
    top = 1 - 5.0 / PAGE_MM[1]
    left = PAPER_LEFT_MM / PAGE_MM[0]
    fig.text(left, top, content.title, fontsize=12, fontweight="bold", va="top")
    facts = [f"{k}: {v}" for k, v in content.facts.items()]
    if content.saliency_caption:
        facts.append(content.saliency_caption)
    fig.text(left, top - 0.035, "\n".join(facts), fontsize=7, va="top", linespacing=1.4)
    fig.text(left + 0.30, top, "\n".join(_prediction_lines(content.predictions)), fontsize=7,
             va="top", family="monospace", linespacing=1.35)
    if content.lead_importance:
        _draw_importance(fig, content.lead_importance)


def _draw_importance(fig: Figure, importance: Mapping[str, float]) -> None:
    """A small bar chart of per-lead importance in the header's right corner."""
    width, height = 62.0, 22.0
    right = PAPER_LEFT_MM + PAGE_WIDTH_MM
    ax = fig.add_axes(((right - width) / PAGE_MM[0], (PAGE_MM[1] - 6.0 - height) / PAGE_MM[1],
                       width / PAGE_MM[0], height / PAGE_MM[1]))
    leads = list(importance)
    ax.bar(range(len(leads)), [float(importance[k]) for k in leads], color="#c0392b")
    ax.set_xticks(range(len(leads)), leads, fontsize=5)
    ax.tick_params(axis="y", labelsize=5)
    ax.set_title("lead importance", fontsize=6, pad=2)


def report_figure(content: ReportContent) -> Figure:
    """The page as a matplotlib Figure (A4 landscape, paper at true scale)."""
    fig = Figure(figsize=(PAGE_MM[0] / MM_PER_INCH, PAGE_MM[1] / MM_PER_INCH))
    ax = fig.add_axes((PAPER_LEFT_MM / PAGE_MM[0], PAPER_BOTTOM_MM / PAGE_MM[1],
                       PAGE_WIDTH_MM / PAGE_MM[0], PAGE_HEIGHT_MM / PAGE_MM[1]))
    _draw_paper(ax, content)
    _draw_header(fig, content)
    return fig


def report_bytes(content: ReportContent, fmt: str = "pdf") -> bytes:
    """The report as PDF or PNG bytes (one page)."""
    if fmt not in FORMATS:
        raise EcgcoreError(f"report format {fmt!r} is not one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    report_figure(content).savefig(buffer, format=fmt, dpi=PNG_DPI,
                                   metadata={"Title": content.title} if fmt == "pdf" else None)
    return buffer.getvalue()
