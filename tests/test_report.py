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
from ecgcore.figures.ecg_paper import PAGE_HEIGHT_MM, PAGE_WIDTH_MM, lead_importance_figure
from ecgcore.predict import read_record_file
from ecgcore.report import (
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
