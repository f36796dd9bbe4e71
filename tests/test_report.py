"""The printable report (one page, PDF or PNG, paper at true scale) and the mapping of an
attribution from the run's window back onto the original record."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from ecgcore.data.prepare import PrepConfig
from ecgcore.data.recordset import STANDARD_LEADS, Signal
from ecgcore.errors import EcgcoreError
from ecgcore.views.figures.ecg_paper import PAGE_HEIGHT_MM, PAGE_WIDTH_MM, lead_importance_figure
from ecgcore.views.scoring import read_record_file
from ecgcore.views.record_report import (
    PNG_DPI, Prediction, ReportContent, report_bytes, report_figure, saliency_on_signal,
)


def _signal(seconds: float = 12.0, fs: float = 500.0, leads=STANDARD_LEADS) -> Signal:
    t = np.arange(int(seconds * fs)) / fs
    data = np.stack([np.sin(2 * np.pi * (1 + i) * t) for i in range(len(leads))]).astype(np.float32)
    return Signal(data=data, fs=fs, leads=tuple(leads))


def test_saliency_lands_on_the_same_time_and_lead_of_the_record() -> None:
    prep = PrepConfig(fs=100, seconds=10, crop="first")
    signal = _signal(leads=tuple(lead.lower() for lead in reversed(STANDARD_LEADS)))  # v6 … i
    attribution = np.zeros((12, 1000), np.float32)
    attribution[STANDARD_LEADS.index("V1"), 250] = 2.0  # 2.50-2.51 s of V1
    mapped = saliency_on_signal(attribution, STANDARD_LEADS, prep, signal)
    assert mapped.shape == signal.data.shape
    v1 = signal.leads.index("v1")
    assert np.flatnonzero(mapped[v1]).tolist() == list(range(1250, 1255))  # five 500 Hz samples
    assert np.count_nonzero(mapped) == 5
    # Past the 10 s window nothing is attributed.
    attribution[:, :] = 1.0
    mapped = saliency_on_signal(attribution, STANDARD_LEADS, prep, signal)
    assert mapped[:, :5000].all() and not mapped[:, 5000:].any()


def test_centre_crop_and_leads_the_run_does_not_use() -> None:
    prep = PrepConfig(fs=100, seconds=10, crop="centre", leads=("I", "II"))
    signal = _signal(seconds=20.0, leads=("I", "II", "V1"))
    attribution = np.zeros((2, 1000), np.float32)
    attribution[1, 0] = 1.0  # the first window sample of lead II = 5.00 s of the record
    mapped = saliency_on_signal(attribution, ("I", "II"), prep, signal)
    assert np.flatnonzero(mapped[1]).tolist() == list(range(2500, 2505))
    assert not mapped[2].any() and not mapped[0].any()
    with pytest.raises(EcgcoreError, match="expected"):
        saliency_on_signal(np.zeros((3, 10)), ("I", "II"), prep, signal)


def _content(shared_data: Path, saliency: bool = True) -> ReportContent:
    signal = read_record_file(shared_data / "ecg" / "cinc2021" / "G12EC" / "E00001.hea")
    band = np.zeros_like(signal.data)
    band[1, 1000:1400] = 1.0
    predictions = [Prediction("426783006", 0.91, 0.6, True), Prediction("164889003", 0.12, 0.5, False)]
    predictions += [Prediction(str(code), 0.01 * i, 0.5, False) for i, code in enumerate(range(10))]
    return ReportContent(title="Test record E00001", signal=signal, predictions=predictions,
                         saliency=band if saliency else None, saliency_caption="saliency: IG for NSR",
                         lead_importance={"II": 0.7, "V1": 0.3} if saliency else None,
                         facts={"run": "run-1", "age": "55", "sex": "F"})


def test_pdf_is_one_page(shared_data: Path) -> None:
    pdf = report_bytes(_content(shared_data), "pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    assert b"Test record E00001" in pdf  # the title is in the document info
    assert len(report_bytes(_content(shared_data, saliency=False), "pdf")) > 10_000


def test_png_is_an_a4_page_with_paper_at_true_scale(shared_data: Path) -> None:
    png = report_bytes(_content(shared_data), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (int(297 / 25.4 * PNG_DPI), int(210 / 25.4 * PNG_DPI))  # 1753 x 1240
    fig = report_figure(_content(shared_data))
    box = fig.axes[0].get_position()
    page_w, page_h = (v * 25.4 for v in fig.get_size_inches())
    assert box.width * page_w == pytest.approx(PAGE_WIDTH_MM)   # 25 mm per second, printed
    assert box.height * page_h == pytest.approx(PAGE_HEIGHT_MM)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"I", "aVR", "V1", "V6"} <= texts
    header = "\n".join(t.get_text() for t in fig.texts)
    assert "NSR — sinus rhythm" in header and "0.910" in header and "more classes" in header
    with pytest.raises(EcgcoreError, match="not one of"):
        report_bytes(_content(shared_data), "svg")


def test_lead_importance_figure_orders_leads() -> None:
    fig = lead_importance_figure({"V1": 0.2, "I": 0.5, "II": 0.3})
    assert list(fig.data[0].x) == ["I", "II", "V1"]
    assert list(fig.data[0].y) == [0.5, 0.3, 0.2]


# ----------------------------------------------------------------------------- layout
# The PDF is rendered to PNG with PDFium (pypdfium2, a test dependency with no further
# dependencies); the ECG grid is found in the pixels by its paper colour, and the text
# boxes are read from the PDF's own text objects.

PAPER_RGB = (0xFF, 0xF7, 0xF5)
RENDER_DPI = 100
LONG_NAMES = ["698252002", "164930006", "713427006|59118001", "733534002|164909002",
              "251146004", "428750005", "67741000119109", "445118002", "426783006", "426177001",
              "427084000", "164889003", "270492004", "39732003"]


def _crowded(shared_data: Path, **extra) -> ReportContent:
    """A report with the longest class names the label space has, more classes than fit,
    true labels among the low ones, and long facts."""
    signal = read_record_file(shared_data / "ecg" / "cinc2021" / "G12EC" / "E00005.hea")
    predictions = [Prediction(code, 0.9 - 0.06 * i, 0.3, i % 5 == 4) for i, code in enumerate(LONG_NAMES)]
    return ReportContent(title="Uploaded record E00005 from a long file name", signal=signal,
                         predictions=predictions, saliency=None,
                         saliency_caption="saliency: Integrated Gradients for NSIVCB — nonspecific "
                                          "intraventricular conduction disorder",
                         lead_importance={lead: 1 / 12 for lead in STANDARD_LEADS},
                         facts={"run": "20261206-1342-59289e0a-d98f", "files": "E00005.hea, E00005.mat",
                                "format": "challenge"}, **extra)


def _render(pdf: bytes) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]], float]:
    """(page pixels as RGB, [(text, (left, bottom, right, top) in PDF points)], page height pt)."""
    import pypdfium2 as pdfium
    document = pdfium.PdfDocument(pdf)
    try:
        assert len(document) == 1
        page = document[0]
        pixels = np.asarray(page.render(scale=RENDER_DPI / 72).to_pil().convert("RGB"))
        textpage = page.get_textpage()
        texts = []
        for obj in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_TEXT], max_depth=8):
            box = obj.get_bounds()
            text = textpage.get_text_bounded(*box).strip()
            if text:
                texts.append((text, tuple(float(v) for v in box)))
        height = page.get_height()
    finally:
        document.close()
    return pixels, texts, height


def _page_words(pdf: bytes) -> str:
    """The one-page PDF's text as PDFium reads it, whitespace collapsed. (Joining the text
    objects instead splits words: matplotlib writes a ligature such as "ff" or "fi" as an
    object of its own, so a run id with "ff" in it came out in two pieces.)"""
    import pypdfium2 as pdfium
    document = pdfium.PdfDocument(pdf)
    try:
        return " ".join(document[0].get_textpage().get_text_range().split())
    finally:
        document.close()


def _grid_box(pixels: np.ndarray, page_height_pt: float) -> tuple[float, float, float, float]:
    """The ECG paper's (left, bottom, right, top) in PDF points, found by its colour."""
    paper = np.all(np.abs(pixels.astype(int) - PAPER_RGB) <= 2, axis=2)
    rows, cols = np.flatnonzero(paper.any(axis=1)), np.flatnonzero(paper.any(axis=0))
    to_pt = 72 / RENDER_DPI
    return (cols[0] * to_pt, page_height_pt - (rows[-1] + 1) * to_pt,
            (cols[-1] + 1) * to_pt, page_height_pt - rows[0] * to_pt)


def _intersect(a, b, slack: float = 0.3) -> bool:
    return (min(a[2], b[2]) - max(a[0], b[0]) > slack) and (min(a[3], b[3]) - max(a[1], b[1]) > slack)


def _overlaps(pdf: bytes, paper_labels: set[str], charts: list[tuple[float, ...]] = ()) -> list[str]:
    """Text on the grid that is not the paper's own label, text on text, and text on a
    chart drawn in the header (`charts`: boxes in PDF points)."""
    pixels, texts, page_h = _render(pdf)
    grid = _grid_box(pixels, page_h)
    mm = 72 / 25.4
    assert (grid[2] - grid[0]) / mm == pytest.approx(PAGE_WIDTH_MM, abs=1.0)   # true scale
    assert (grid[3] - grid[1]) / mm == pytest.approx(PAGE_HEIGHT_MM, abs=1.0)
    pixel = 72 / RENDER_DPI  # the grid's edges are known to one pixel

    def inside(box) -> bool:
        return (box[0] >= grid[0] - pixel and box[2] <= grid[2] + pixel and box[1] >= grid[1] - pixel
                and box[3] <= grid[3] + pixel)

    problems = [f"{text!r} lies on the ECG grid" for text, box in texts
                if _intersect(box, grid, 0.0) and not (inside(box) and text in paper_labels)]
    header = [(t, b) for t, b in texts if not _intersect(b, grid, 0.0)]
    problems += [f"{text!r} runs into the lead-importance chart" for text, box in header
                 if any(_intersect(box, chart) for chart in charts)]
    for i, (text, box) in enumerate(header):
        problems += [f"{text!r} overlaps {other!r}" for other, box2 in header[i + 1:] if _intersect(box, box2)]
    return problems


def _paper_labels(content: ReportContent) -> set[str]:
    from ecgcore.views.figures import ecg_paper_figure

    fig = ecg_paper_figure(content.signal.data, content.signal.fs, content.signal.leads)
    return {note.text for note in fig.layout.annotations}


def _chart_boxes(content: ReportContent) -> list[tuple[float, ...]]:
    """The header's chart axes in PDF points (the paper is axes 0)."""
    fig = report_figure(content)
    width, height = (v * 72 for v in fig.get_size_inches())
    return [(a.get_position().x0 * width, a.get_position().y0 * height,
             a.get_position().x1 * width, a.get_position().y1 * height) for a in fig.axes[1:]]


def test_report_text_never_lies_on_the_grid_or_on_other_text(shared_data: Path) -> None:
    content = _crowded(shared_data)
    charts = _chart_boxes(content)
    assert len(charts) == 1
    assert _overlaps(report_bytes(content, "pdf"), _paper_labels(content), charts) == []


def test_a_run_id_with_a_ligature_reads_back_whole_from_the_pdf(shared_data: Path) -> None:
    """"ff" in a run id (ids are hex) must not cut the id a reader copies out of the PDF."""
    run_line = "Model: run 20261206-2019-2bff8f03-83b9, small_cnn, scratch on target_challenge (synthetic)"
    pdf = report_bytes(_crowded(shared_data, provenance=[run_line]), "pdf")
    assert "run 20261206-2019-2bff8f03-83b9, small_cnn" in _page_words(pdf)


def test_report_flags_rhythms_that_exclude_each_other_and_says_how_calls_were_made(shared_data: Path) -> None:
    from dataclasses import replace

    from ecgcore.views.calls import make_calls, run_thresholds

    classes = ["426783006", "426177001", "59118001", "427084000"]
    thresholds = run_thresholds({"test": {"thresholds": dict.fromkeys(classes, 0.4)}}, classes)
    calls = make_calls(dict(zip(classes, (0.55, 0.81, 0.7, 0.1))), thresholds)
    content = replace(_content(shared_data), predictions=calls, calls_note=thresholds.note)
    header = "\n".join(t.get_text() for t in report_figure(content).texts)
    assert "0.810  0.400  yes*" in header and "0.550  0.400  yes*" in header
    assert "0.700  0.400  yes " in header  # RBBB is no rhythm
    assert "* rhythms exclude each other; most probable: SB (0.810)" in header
    words = " ".join(header.split())  # wrapped lines joined
    assert "threshold per class, tuned on validation" in words and "at 0.5" not in words
    assert "Research use only, not for diagnosis." in header


def test_the_most_probable_class_keeps_its_row_even_when_not_called(shared_data: Path) -> None:
    from dataclasses import replace

    # LAD is the likeliest but under its tuned threshold; a dozen unlikely classes are called.
    predictions = [Prediction("39732003", 0.745, 0.8)]
    predictions += [Prediction(code, 0.3 - 0.01 * i, 0.1) for i, code in enumerate(LONG_NAMES)]
    fig = report_figure(replace(_content(shared_data), predictions=predictions))
    header = "\n".join(t.get_text() for t in fig.texts)
    assert "0.745  0.800  no    LAD — left axis deviation" in header
    assert re.search(r"… \d+ more classes( with lower probabilities)? \(\d+ called\)", header)
    # Every called rhythm of the conflict keeps its row (NSR, SB, STach, AF are all called here).
    for name in ("NSR — sinus rhythm", "SB — sinus bradycardia", "STach — sinus tachycardia",
                 "AF — atrial fibrillation"):
        assert f"yes*  {name}" in header


def test_the_warning_is_drawn_white_on_red_under_the_title(shared_data: Path) -> None:
    from dataclasses import replace

    headline = "Trained only on synthetic data: its calls mean nothing for a real patient."
    fig = report_figure(replace(_content(shared_data), warning=headline))
    boxes = [t for t in fig.texts if t.get_bbox_patch() is not None]
    assert " ".join(t.get_text() for t in boxes) == headline  # wrapped, whole
    for box in boxes:
        assert box.get_color() == "#ffffff"
        assert box.get_bbox_patch().get_facecolor()[:3] == pytest.approx((0xb0 / 255, 0x3a / 255, 0x2e / 255))
    assert " ".join(" ".join(t.get_text() for t in fig.texts).split()).count(headline) == 1
