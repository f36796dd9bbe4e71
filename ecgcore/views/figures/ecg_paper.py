"""A record drawn as a 12-lead printout on ECG paper (Plotly), optionally with a saliency band.

Why a hand-built figure: clinicians read ECGs on paper at 25 mm/s and 10 mm/mV
in the 3x4 layout with a lead II rhythm strip; a page that shows the signal any
other way makes them re-learn what they already know. Plotting libraries have
no ECG-paper chart, so the geometry is written here once and every page (Datasets,
Inspect, Predict) reuses it.

Coordinates are millimetres of paper: x = CAL_MARGIN_MM + seconds * 25,
y = row baseline + mV * 10, with equal axis scaling so one millimetre is square.
Column k of the 3x4 block shows seconds [2.5k, 2.5k + 2.5) of the window, so a
sample keeps the same x in its column and in the rhythm strip below.
The grid is the axes' own major/minor grid lines (no per-line shapes), and the
signal is one trace per row with NaN breaks, so a figure holds about ten traces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ecgcore.data.recordset import STANDARD_LEADS

MM_PER_SECOND = 25.0
MM_PER_MV = 10.0
COLUMN_SECONDS = 2.5
N_COLUMNS = 4
PAGE_SECONDS = COLUMN_SECONDS * N_COLUMNS
MINOR_MM = 1.0  # 0.04 s, 0.1 mV
MAJOR_MM = 5.0  # 0.2 s, 0.5 mV

# Left margin of every row holds the 1 mV x 200 ms calibration pulse.
CAL_MARGIN_MM = 10.0
CAL_START_MM = 2.5
CAL_WIDTH_MM = 0.2 * MM_PER_SECOND
CAL_HEIGHT_MM = 1.0 * MM_PER_MV

# The standard 3x4 block: columns I/II/III, aVR/aVL/aVF, V1-V3, V4-V6.
GRID_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
N_ROWS = len(GRID_ROWS) + 1  # plus the rhythm strip
ROW_PITCH_MM = 40.0
HEADROOM_MM = 10.0  # extra paper above the top row, so tall R waves (up to 3 mV) stay on it
PAGE_WIDTH_MM = CAL_MARGIN_MM + PAGE_SECONDS * MM_PER_SECOND
PAGE_HEIGHT_MM = N_ROWS * ROW_PITCH_MM + HEADROOM_MM
BAND_HALF_MM = 15.0  # half-height of the saliency band at the record's peak saliency

PAPER_COLOUR = "#fff7f5"
MINOR_COLOUR = "#f7cfcf"
MAJOR_COLOUR = "#e58e8e"
TRACE_COLOUR = "#111111"
ABSENT_COLOUR = "#9a9a9a"
BAND_COLOUR = "rgba(255, 140, 0, 0.40)"


def time_to_mm(seconds: float | np.ndarray) -> float | np.ndarray:
    """x on the paper of a time (seconds from the start of the shown window)."""
    return CAL_MARGIN_MM + np.asarray(seconds, dtype=float) * MM_PER_SECOND


def row_baseline_mm(row: int) -> float:
    """y of the baseline of a row: rows 0-2 are the 3x4 block, row 3 the rhythm strip."""
    return PAGE_HEIGHT_MM - HEADROOM_MM - ROW_PITCH_MM * (row + 0.5)


def match_leads(leads: Sequence[str]) -> dict[str, int]:
    """Map each standard lead name to its index in `leads`, matched case-insensitively
    (files write `AVR`, `avr`, `aVR`); leads the record lacks are simply not in the map."""
    by_lower: dict[str, int] = {}
    for index, name in enumerate(leads):
        by_lower.setdefault(str(name).strip().lower(), index)
    return {std: by_lower[std.lower()] for std in STANDARD_LEADS if std.lower() in by_lower}


def normalise_saliency(saliency: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Saliency as (n_leads, n_samples) in [0, 1]: absolute value over the record's peak.

    Accepts per-sample (same shape as the data) or per-lead (n_leads,) arrays; the sign
    is dropped because the band shows how much, not which way, a region mattered.
    """
    values = np.asarray(saliency, dtype=float)
    if values.shape == (shape[0],):
        values = np.repeat(values[:, None], shape[1], axis=1)
    elif values.shape != shape:
        raise ValueError(
            f"saliency has shape {values.shape}; expected {shape} (per sample) or ({shape[0]},) (per lead)"
        )
    values = np.abs(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0))
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def _column_bounds(column: int, fs: float, start: int, n_samples: int, seconds: float) -> tuple[int, int]:
    """Sample index range [a, b) whose time from the window start lies in
    [column * COLUMN_SECONDS, column * COLUMN_SECONDS + seconds)."""
    t0 = column * COLUMN_SECONDS
    a = start + int(np.ceil(t0 * fs - 1e-9))
    b = start + int(np.ceil((t0 + seconds) * fs - 1e-9))
    return min(a, n_samples), min(b, n_samples)


def _band_polygon(x_left: np.ndarray, x_right: np.ndarray, height: np.ndarray,
                  baseline: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed step-shaped polygon (one NaN-terminated piece) around the baseline."""
    upper_x = np.column_stack([x_left, x_right]).ravel()
    upper_y = np.repeat(baseline + height, 2)
    lower_y = np.repeat(baseline - height, 2)[::-1]
    xs = np.concatenate([upper_x, upper_x[::-1], upper_x[:1], [np.nan]])
    ys = np.concatenate([upper_y, lower_y, upper_y[:1], [np.nan]])
    return xs, ys


def _segment_band(sal: np.ndarray, a: int, b: int, start: int, fs: float,
                  baseline: float) -> tuple[np.ndarray, np.ndarray]:
    """Saliency of samples [a, b) pooled (max) into 1 mm bins, as a band polygon."""
    step = max(1, int(round(fs * MINOR_MM / MM_PER_SECOND)))
    starts = np.arange(a, b, step)
    heights = np.maximum.reduceat(sal[a:b], starts - a) * BAND_HALF_MM
    x_left = time_to_mm((starts - start) / fs)
    x_right = np.append(x_left[1:], time_to_mm((b - start) / fs))
    return _band_polygon(x_left, x_right, heights, baseline)


def _calibration_trace() -> go.Scatter:
    """The 1 mV x 200 ms pulse at the start of every row, one trace with NaN breaks."""
    xs: list[float] = []
    ys: list[float] = []
    for row in range(N_ROWS):
        base = row_baseline_mm(row)
        left, right = CAL_START_MM, CAL_START_MM + CAL_WIDTH_MM
        xs += [0.5, left, left, right, right, CAL_MARGIN_MM - 0.5, np.nan]
        ys += [base, base, base + CAL_HEIGHT_MM, base + CAL_HEIGHT_MM, base, base, np.nan]
    return go.Scatter(x=np.array(xs, dtype=np.float32), y=np.array(ys, dtype=np.float32),
                      mode="lines", name="calibration", hoverinfo="skip",
                      line=dict(color=TRACE_COLOUR, width=1.2))


def _column_marks_trace(n_columns: int) -> go.Scatter:
    """Short vertical bars where one lead hands over to the next, as printers draw them."""
    xs: list[float] = []
    ys: list[float] = []
    for row in range(len(GRID_ROWS)):
        base = row_baseline_mm(row)
        for column in range(1, n_columns):
            x = float(time_to_mm(column * COLUMN_SECONDS))
            xs += [x, x, np.nan]
            ys += [base - 4.0, base + 4.0, np.nan]
    return go.Scatter(x=np.array(xs, dtype=np.float32), y=np.array(ys, dtype=np.float32),
                      mode="lines", name="column marks", hoverinfo="skip",
                      line=dict(color=TRACE_COLOUR, width=1.0))


def _label(text: str, x: float, row: int, present: bool) -> dict:
    return dict(x=x, y=row_baseline_mm(row) + 14.0, text=text if present else f"{text} (absent)",
                showarrow=False, xanchor="left", yanchor="middle",
                font=dict(size=13, color=TRACE_COLOUR if present else ABSENT_COLOUR))


def ecg_paper_figure(data: np.ndarray, fs: float, leads: Sequence[str],
                     saliency: np.ndarray | None = None, title: str = "",
                     rhythm_lead: str = "II", start: float = 0.0,
                     height: int = 640) -> go.Figure:
    """A record as a 12-lead printout: 3x4 block of 2.5 s columns plus a 10 s rhythm strip.

    data: (n_leads, n_samples) in mV; leads: their names (matched to the standard 12
    case-insensitively; missing leads are labelled "(absent)"). saliency: optional,
    same shape as data or one value per lead, drawn as a translucent band behind each
    trace whose height follows |saliency| normalised over the whole record.
    start: the second of the record where the 10 s page begins (records longer than a
    page show one page at a time). Each lead is drawn about its median over the page,
    as an electrocardiograph's baseline filter would.
    """
    values = np.asarray(data, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != len(leads):
        raise ValueError(f"data has shape {values.shape}; expected ({len(leads)}, n_samples) for leads {list(leads)}")
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    n_samples = values.shape[1]
    duration = n_samples / fs
    first = min(max(0, int(round(start * fs))), max(0, n_samples - 1))
    page = values[:, first:first + int(np.ceil(PAGE_SECONDS * fs))]
    with np.errstate(all="ignore"):
        medians = np.nanmedian(page, axis=1) if page.size else np.zeros(len(leads))
    medians = np.nan_to_num(medians)
    sal = normalise_saliency(saliency, values.shape) if saliency is not None else None

    index = match_leads(leads)
    rhythm_index = _rhythm_index(rhythm_lead, leads, index)
    traces: list[go.Scatter] = []
    bands: list[go.Scatter] = []
    annotations: list[dict] = []

    row_plan: list[list[tuple[str, int | None, int, float]]] = [
        [(name, index.get(name), column, COLUMN_SECONDS) for column, name in enumerate(names)]
        for names in GRID_ROWS
    ]
    rhythm_name = str(leads[rhythm_index]) if rhythm_index is not None else rhythm_lead
    row_plan.append([(rhythm_name, rhythm_index, 0, PAGE_SECONDS)])

    for row, plan in enumerate(row_plan):
        base = row_baseline_mm(row)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        custom: list[np.ndarray] = []
        band_x: list[np.ndarray] = []
        band_y: list[np.ndarray] = []
        for name, lead, column, seconds in plan:
            annotations.append(_label(name, float(time_to_mm(column * COLUMN_SECONDS)) + 1.0, row,
                                      lead is not None))
            if lead is None:
                continue
            a, b = _column_bounds(column, fs, first, n_samples, seconds)
            if b <= a:
                continue
            t = np.arange(a, b) / fs
            mv = values[lead, a:b]
            xs += [time_to_mm(t - first / fs), [np.nan]]
            ys += [base + (mv - medians[lead]) * MM_PER_MV, [np.nan]]
            custom += [np.column_stack([t, mv]), [[np.nan, np.nan]]]
            if sal is not None:
                bx, by = _segment_band(sal[lead], a, b, first, fs, base)
                band_x.append(bx)
                band_y.append(by)
        label = "rhythm " + rhythm_name if row == len(GRID_ROWS) else "row " + "/".join(GRID_ROWS[row])
        if xs:
            traces.append(go.Scatter(
                x=np.concatenate(xs).astype(np.float32), y=np.concatenate(ys).astype(np.float32),
                customdata=np.concatenate(custom).astype(np.float32), mode="lines", name=label,
                line=dict(color=TRACE_COLOUR, width=1.1),
                hovertemplate="%{customdata[0]:.3f} s, %{customdata[1]:.2f} mV<extra>" + label + "</extra>",
            ))
        if band_x:
            bands.append(go.Scatter(
                x=np.concatenate(band_x).astype(np.float32), y=np.concatenate(band_y).astype(np.float32),
                mode="lines", fill="toself", fillcolor=BAND_COLOUR, line=dict(width=0),
                name="saliency " + label, hoverinfo="skip",
            ))

    fig = go.Figure(data=[*bands, _calibration_trace(), _column_marks_trace(N_COLUMNS), *traces])
    annotations.append(_footer(fs, duration, first / fs))
    _paper_layout(fig, title, annotations, height)
    fig.layout.meta = {
        "mm_per_second": MM_PER_SECOND, "mm_per_mv": MM_PER_MV, "x0_mm": CAL_MARGIN_MM,
        "row_baselines_mm": [row_baseline_mm(r) for r in range(N_ROWS)],
        "start_seconds": first / fs, "duration_seconds": duration, "fs": float(fs),
        "rhythm_lead": rhythm_name if rhythm_index is not None else None,
        "absent_leads": [name for name in STANDARD_LEADS if name not in index],
    }
    return fig


def _rhythm_index(rhythm_lead: str, leads: Sequence[str], index: dict[str, int]) -> int | None:
    """The rhythm strip's lead: the one asked for (any name in the record), else lead II,
    else the first standard lead present, else None (drawn as absent)."""
    wanted = rhythm_lead.strip().lower()
    for i, name in enumerate(leads):
        if str(name).strip().lower() == wanted:
            return i
    if "II" in index:
        return index["II"]
    return next(iter(index.values()), None)


def _footer(fs: float, duration: float, start: float) -> dict:
    """Paper settings and, when the record is not exactly one page, which part is shown."""
    text = f"25 mm/s · 10 mm/mV · {fs:g} Hz"
    if duration < PAGE_SECONDS - 1e-9:
        text += f" · record is {duration:.2f} s (shorter than the 10 s page)"
    elif duration > PAGE_SECONDS + 1e-9 or start > 0:
        text += f" · showing {start:.1f}–{min(start + PAGE_SECONDS, duration):.1f} s of {duration:.1f} s"
    return dict(x=PAGE_WIDTH_MM, y=0.0, text=text, showarrow=False, xanchor="right",
                yanchor="bottom", font=dict(size=11, color="#555555"), bgcolor="rgba(255,255,255,0.85)")


def _paper_layout(fig: go.Figure, title: str, annotations: list[dict], height: int) -> None:
    """Pink paper: major lines every 5 mm, minor every 1 mm, 1 mm square (equal aspect)."""
    grid = dict(
        showgrid=True, gridcolor=MAJOR_COLOUR, gridwidth=1, tick0=0, dtick=MAJOR_MM,
        minor=dict(showgrid=True, gridcolor=MINOR_COLOUR, gridwidth=0.5, tick0=0, dtick=MINOR_MM),
        showticklabels=False, ticks="", zeroline=False, showline=True, linecolor=MAJOR_COLOUR,
        mirror=True, constrain="domain",
    )
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left") if title else None,
        xaxis=dict(range=[0, PAGE_WIDTH_MM], **grid),
        yaxis=dict(range=[0, PAGE_HEIGHT_MM], scaleanchor="x", scaleratio=1, **grid),
        plot_bgcolor=PAPER_COLOUR, paper_bgcolor="white", showlegend=False,
        annotations=annotations, height=height,
        margin=dict(l=8, r=8, t=48 if title else 12, b=8), hovermode="closest",
    )


def lead_importance_figure(importance: dict[str, float], title: str = "", height: int = 260) -> go.Figure:
    """Per-lead importance as bars in the standard lead order (the leads the dict holds,
    standard ones first), in the saliency band's colour so the two read together."""
    order = [lead for lead in STANDARD_LEADS if lead in importance]
    order += [lead for lead in importance if lead not in order]
    values = [float(importance[lead]) for lead in order]
    fig = go.Figure(go.Bar(x=order, y=values, marker_color="rgba(255, 140, 0, 0.85)",
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left") if title else None,
                      height=height, margin=dict(l=8, r=8, t=40 if title else 8, b=8),
                      yaxis_title="share of attribution", xaxis=dict(type="category"),
                      plot_bgcolor="white", paper_bgcolor="white")
    return fig
