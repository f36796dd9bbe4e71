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
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath

from ecgcore.views.calls import Call, rhythm_conflict
from ecgcore.data.labels import class_name
from ecgcore.data.prepare import PrepConfig
from ecgcore.data.prepare.signal_ops import lead_indices, resampled_length
from ecgcore.data.recordset import Signal
from ecgcore.errors import EcgcoreError
from ecgcore.views.figures import ecg_paper_figure
from ecgcore.views.figures.ecg_paper import MAJOR_MM, MINOR_MM, PAGE_HEIGHT_MM, PAGE_WIDTH_MM
from ecgcore.views.provenance import RESEARCH_USE

MM_PER_INCH = 25.4
PAGE_MM = (297.0, 210.0)  # A4 landscape
PAPER_LEFT_MM = (PAGE_MM[0] - PAGE_WIDTH_MM) / 2
FORMATS = ("pdf", "png")
PNG_DPI = 150
# The header: four columns over the paper's width (what the model rests on, the record,
# the calls, lead importance), from HEADER_TOP_MM below the page's top edge down to
# HEADER_BOTTOM_MM, which stays clear of the paper; all in mm.
PAPER_BOTTOM_MM = 5.0
HEADER_TOP_MM = 5.0
HEADER_BOTTOM_MM = PAGE_MM[1] - PAPER_BOTTOM_MM - PAGE_HEIGHT_MM - 2.0
COLUMN_GAP_MM = 3.0
COLUMN_WIDTHS_MM = (80.0, 64.0, 70.0, 37.0)
WARNING_BOX = "#b03a2e"
TOP_ROWS = 3  # the calls table always shows the most probable classes
METHOD_NAMES = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "occlusion": "Occlusion"}


# One class on the report: code, probability, the run's threshold, true label if known.
Prediction = Call


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
    provenance: Sequence[str] = ()   # what the model rests on, one sentence a line
    warning: str = ""                # drawn white on red under the title (e.g. synthetic training data)
    calls_note: str = ""             # how probabilities became calls (which thresholds)


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


@dataclass(frozen=True)
class _Style:
    size: float
    weight: str = "normal"
    family: str = "sans-serif"
    colour: str = "#111111"

    def font(self) -> FontProperties:
        return FontProperties(size=self.size, weight=self.weight, family=self.family)

    @property
    def pitch_mm(self) -> float:
        """Distance between baselines of two lines (1.3 x the font size)."""
        return self.size * 1.3 / 72 * MM_PER_INCH


TITLE = _Style(9.5, "bold")
BODY = _Style(6.0)
STRONG = _Style(6.0, "bold")
WARNING = _Style(6.5, "bold", colour="#ffffff")
MONO = _Style(5.5, family="monospace")
_TEXT_PATH = TextToPath()


def _text_width_mm(text: str, style: _Style) -> float:
    """Printed width of one line of text (matplotlib's own font metrics, no renderer)."""
    width, _, _ = _TEXT_PATH.get_text_width_height_descent(text, style.font(), ismath=False)
    return width / 72 * MM_PER_INCH


def _clip(text: str, width_mm: float, style: _Style) -> str:
    """The line cut with "…" so that it fits `width_mm`."""
    if _text_width_mm(text, style) <= width_mm:
        return text
    while text and _text_width_mm(text + "…", style) > width_mm:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(text: str, width_mm: float, style: _Style, max_lines: int) -> list[str]:
    """Words filled into lines of `width_mm`; past `max_lines` the last line ends in "…"."""
    lines: list[str] = []
    for word in text.split():
        if lines and _text_width_mm(f"{lines[-1]} {word}", style) <= width_mm:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _clip(lines[-1] + " …", width_mm, style)
    return [_clip(line, width_mm, style) for line in lines]




@dataclass
class _Column:
    """One header column: lines placed top-down from `top_mm` (measured from the page's
    top edge) within `width_mm`, never below `bottom_mm` (just above the ECG paper)."""

    fig: Figure
    left_mm: float
    width_mm: float
    y_mm: float = HEADER_TOP_MM

    @property
    def room_mm(self) -> float:
        return HEADER_BOTTOM_MM - self.y_mm

    def lines_left(self, style: _Style) -> int:
        return max(0, int((self.room_mm - style.size / 72 * MM_PER_INCH) // style.pitch_mm) + 1)

    def put(self, line: str, style: _Style, box: str | None = None) -> None:
        if self.lines_left(style) < 1:
            raise EcgcoreError(f"report header: no room left for {line!r}")
        self.fig.text(self.left_mm / PAGE_MM[0], 1 - self.y_mm / PAGE_MM[1], line, va="top",
                      fontproperties=style.font(), color=style.colour, parse_math=False,
                      bbox=None if box is None else dict(boxstyle="square,pad=0.25", fc=box, ec=box))
        self.y_mm += style.pitch_mm * (1.25 if box else 1.0)

    def paragraph(self, text: str, style: _Style, max_lines: int = 2, reserve: int = 0) -> None:
        """Wrapped text; `reserve` lines of `style` are kept free below it."""
        room = min(max_lines, self.lines_left(style) - reserve)
        for line in _wrap(text, self.width_mm, style, max(room, 0)) if room > 0 else []:
            self.put(line, style)


def _prediction_lines(predictions: Sequence[Prediction], capacity: int, chars: int) -> list[str]:
    """The calls table in `capacity` fixed-width lines of at most `chars` characters, in
    order of probability: the TOP_ROWS most probable classes get a row, then the true
    labels, the conflicting rhythms, the other called classes, and the next most probable;
    the rest are counted. Called rhythms that exclude
    each other are marked "yes*" with a footnote naming the most probable."""
    ordered = sorted(predictions, key=lambda p: -p.probability)
    known = any(p.true is not None for p in predictions)
    conflict = rhythm_conflict(predictions)
    clash = set(conflict.codes) if conflict else set()
    rows = capacity - 1 - (conflict is not None)  # the column header, the footnote
    if len(ordered) > rows:
        rows -= 1  # one line says how many are not shown
    shown = ordered[:min(TOP_ROWS, rows)]
    for group in ([p for p in ordered if p.true], [p for p in ordered if p.code in clash],
                  [p for p in ordered if p.called], ordered):
        shown += [p for p in group if p not in shown][: rows - len(shown)]
    shown.sort(key=lambda p: -p.probability)
    lines = ["prob.  cut    call  " + ("true  " if known else "") + "class"]
    for p in shown:
        truth = ("yes   " if p.true else "no    ") if known else ""
        call = ("yes*" if p.code in clash else "yes ") if p.called else "no  "
        lines.append(f"{p.probability:5.3f}  {p.threshold:5.3f}  {call}  {truth}{class_name(p.code)}")
    hidden = [p for p in ordered if p not in shown]
    if hidden:
        called = sum(p.called for p in hidden)
        lower = " with lower probabilities" if hidden[0].probability <= shown[-1].probability else ""
        lines.append(f"… {len(hidden)} more classes{lower}" + (f" ({called} called)" if called else ""))
    if conflict:
        lines.append(conflict.short())
    return [line if len(line) <= chars else line[: chars - 1] + "…" for line in lines]


def _draw_header(fig: Figure, content: ReportContent) -> None:
    """Four columns above the paper, none reaching it: what the model rests on; the record;
    the calls; lead importance. Every line is fitted to its column (cut with "…")."""
    left = PAPER_LEFT_MM
    about = _Column(fig, left, COLUMN_WIDTHS_MM[0])
    about.put(_clip(content.title, about.width_mm, TITLE), TITLE)
    if content.warning:
        for line in _wrap(content.warning, about.width_mm - 2, WARNING, 2):
            about.put(line, WARNING, box=WARNING_BOX)
    for line in content.provenance:
        about.paragraph(line, BODY, reserve=1)
    about.paragraph(RESEARCH_USE, STRONG, max_lines=1)

    left += COLUMN_WIDTHS_MM[0] + COLUMN_GAP_MM
    record = _Column(fig, left, COLUMN_WIDTHS_MM[1])
    notes = [f"{k}: {v}" for k, v in content.facts.items()]
    notes += [n for n in (content.calls_note, content.saliency_caption) if n]
    for note in notes:
        record.paragraph(note, BODY)

    left += COLUMN_WIDTHS_MM[1] + COLUMN_GAP_MM
    calls = _Column(fig, left, COLUMN_WIDTHS_MM[2])
    chars = int(calls.width_mm // _text_width_mm("0", MONO))
    for line in _prediction_lines(content.predictions, calls.lines_left(MONO), chars):
        calls.put(line, MONO)
    if content.lead_importance:
        left += COLUMN_WIDTHS_MM[2] + COLUMN_GAP_MM
        _draw_importance(fig, content.lead_importance, left, COLUMN_WIDTHS_MM[3])


def _draw_importance(fig: Figure, importance: Mapping[str, float], left_mm: float,
                     width_mm: float) -> None:
    """A small bar chart of per-lead importance in the header's right column: title above,
    lead names below the bars, all of it above the paper."""
    label_mm, title_mm = 4.5, 3.0
    bottom = PAGE_MM[1] - HEADER_BOTTOM_MM + label_mm
    height = HEADER_BOTTOM_MM - HEADER_TOP_MM - label_mm - title_mm
    ax = fig.add_axes((left_mm / PAGE_MM[0], bottom / PAGE_MM[1], width_mm / PAGE_MM[0],
                       height / PAGE_MM[1]))
    leads = list(importance)
    ax.bar(range(len(leads)), [float(importance[k]) for k in leads], color="#c0392b")
    ax.set_xticks(range(len(leads)), leads, fontsize=4.5, rotation=90)
    ax.set_yticks([])
    ax.tick_params(axis="x", length=1.5, pad=1)
    ax.set_title("lead importance (relative)", fontsize=5.5, pad=2)


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
