"""ecg_paper_figure: paper geometry, 3x4 + rhythm layout, saliency band, odd records."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcore.data.recordset import STANDARD_LEADS
from ecgcore.views.figures import ecg_paper_figure
from ecgcore.views.figures import ecg_paper as paper

FS = 500.0


def _trace(fig, name):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


def _labels(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations if "mm/s" not in a.text]


def _record(seconds: float = 10.0, fs: float = FS, n_leads: int = 12) -> np.ndarray:
    """Each lead holds a distinct constant (lead i = i * 0.1 mV) so it can be told apart."""
    n = int(round(seconds * fs))
    return np.repeat((np.arange(n_leads) * 0.1)[:, None], n, axis=1).astype(np.float32)


def test_sample_x_follows_25_mm_per_second_in_every_column():
    data = np.zeros((12, 5000), dtype=np.float32)
    # Mark one sample per column in lead I/aVR/V1/V4 (row 0) with a 1 mV spike.
    marks = {0: 100, 3: 1250 + 321, 6: 2500 + 7, 9: 3750 + 1249}  # lead index -> sample
    for lead, sample in marks.items():
        data[lead, sample] = 1.0
    fig = ecg_paper_figure(data, FS, STANDARD_LEADS)
    row0 = _trace(fig, "row I/aVR/V1/V4")
    x, y = np.asarray(row0.x, dtype=float), np.asarray(row0.y, dtype=float)
    base = paper.row_baseline_mm(0)
    peaks = x[np.isclose(y, base + 10.0)]
    expected = [paper.CAL_MARGIN_MM + s / FS * 25.0 for s in marks.values()]
    np.testing.assert_allclose(sorted(peaks), expected, atol=1e-3)
    # Column k holds exactly the samples of seconds [2.5k, 2.5k + 2.5): four runs of 1250.
    runs = np.split(x, np.where(np.isnan(x))[0])
    lengths = [int(np.sum(~np.isnan(r))) for r in runs if np.any(~np.isnan(r))]
    assert lengths == [1250, 1250, 1250, 1250]
    assert np.nanmin(x) == pytest.approx(paper.CAL_MARGIN_MM)
    assert np.nanmax(x) == pytest.approx(paper.CAL_MARGIN_MM + 4999 / FS * 25.0, abs=1e-3)


def test_one_millivolt_step_spans_ten_millimetres():
    data = np.zeros((12, 5000), dtype=np.float32)
    data[1, 2500:] = 1.0  # lead II steps by 1 mV half-way
    fig = ecg_paper_figure(data, FS, STANDARD_LEADS)
    rhythm = _trace(fig, "rhythm II")
    y = np.asarray(rhythm.y, dtype=float)
    y = y[~np.isnan(y)]
    assert len(y) == 5000
    assert y[2600] - y[100] == pytest.approx(10.0, abs=1e-4)
    # customdata carries the unshifted time and millivolts for hovering.
    custom = np.asarray(rhythm.customdata, dtype=float)
    assert custom[2600, 1] == pytest.approx(1.0)
    assert custom[2600, 0] == pytest.approx(2600 / FS)


def test_calibration_pulse_is_10_mm_tall_and_5_mm_wide_on_every_row():
    fig = ecg_paper_figure(np.zeros((12, 5000)), FS, STANDARD_LEADS)
    cal = _trace(fig, "calibration")
    x, y = np.asarray(cal.x, dtype=float), np.asarray(cal.y, dtype=float)
    pulses = [seg for seg in np.split(np.column_stack([x, y]), np.where(np.isnan(x))[0])
              if np.any(~np.isnan(seg[:, 0]))]
    assert len(pulses) == 4
    for pulse in pulses:
        pulse = pulse[~np.isnan(pulse[:, 0])]
        base = pulse[0, 1]
        high = pulse[np.isclose(pulse[:, 1], base + 10.0)]
        assert np.ptp(pulse[:, 1]) == pytest.approx(10.0)
        assert np.ptp(high[:, 0]) == pytest.approx(5.0)  # 200 ms at 25 mm/s
        assert pulse[:, 0].max() <= paper.CAL_MARGIN_MM  # before the trace starts


def test_paper_grid_square_millimetres_in_pink():
    fig = ecg_paper_figure(np.zeros((12, 5000)), FS, STANDARD_LEADS)
    xa, ya = fig.layout.xaxis, fig.layout.yaxis
    assert xa.dtick == 5 and ya.dtick == 5 and xa.minor.dtick == 1 and ya.minor.dtick == 1
    assert ya.scaleanchor == "x" and ya.scaleratio == 1
    assert tuple(xa.range) == (0, 260.0) and tuple(ya.range) == (0, 170.0)
    assert [paper.row_baseline_mm(r) for r in range(4)] == [140.0, 100.0, 60.0, 20.0]
    assert fig.layout.plot_bgcolor.startswith("#fff")
    # A handful of traces, not thousands of shapes.
    assert len(fig.data) <= 8 and not fig.layout.shapes


def test_layout_has_twelve_labels_plus_rhythm_strip():
    fig = ecg_paper_figure(_record(), FS, STANDARD_LEADS, title="E00001")
    labels = _labels(fig)
    assert labels[:12] == ["I", "aVR", "V1", "V4", "II", "aVL", "V2", "V5", "III", "aVF", "V3", "V6"]
    assert labels[12] == "II" and len(labels) == 13
    names = [t.name for t in fig.data]
    assert names[-4:] == ["row I/aVR/V1/V4", "row II/aVL/V2/V5", "row III/aVF/V3/V6", "rhythm II"]
    assert fig.layout.title.text == "E00001"
    # Each lead sits on its row's baseline (distinct constants are centred on their median).
    rows = [np.asarray(t.y, dtype=float) for t in fig.data[-4:]]
    for row, y in enumerate(rows):
        np.testing.assert_allclose(y[~np.isnan(y)], paper.row_baseline_mm(row))
    # The rhythm strip spans the full 10 s page.
    x = np.asarray(fig.data[-1].x, dtype=float)
    assert np.nanmax(x) - np.nanmin(x) == pytest.approx(4999 / FS * 25.0, abs=1e-3)


def test_leads_matched_case_insensitively_and_reordered():
    order = [7, 0, 11, 3, 1, 5, 2, 4, 6, 8, 9, 10]
    names = [STANDARD_LEADS[i].upper() for i in order]  # AVR, V1 ... shuffled
    data = _record()[order]
    shuffled = ecg_paper_figure(data, FS, names)
    standard = ecg_paper_figure(_record(), FS, STANDARD_LEADS)
    for a, b in zip(shuffled.data, standard.data):
        np.testing.assert_array_equal(np.asarray(a.customdata if a.customdata is not None else a.y),
                                      np.asarray(b.customdata if b.customdata is not None else b.y))
    assert shuffled.layout.meta["absent_leads"] == []


def test_saliency_band_only_when_given_and_shaped_like_the_saliency():
    data = _record()
    plain = ecg_paper_figure(data, FS, STANDARD_LEADS)
    assert not [t for t in plain.data if t.name.startswith("saliency")]

    saliency = np.zeros(data.shape)
    saliency[1, 2500:2520] = -4.0  # lead II, 5.00-5.04 s: the record's peak (sign dropped)
    saliency[7, 2600:2620] = 2.0   # V2 (column 2: 5.0-7.5 s), half the peak
    fig = ecg_paper_figure(data, FS, STANDARD_LEADS, saliency=saliency)
    bands = [t for t in fig.data if t.name.startswith("saliency")]
    assert len(bands) == 4
    assert all(t.fill == "toself" for t in bands)
    assert fig.data.index(bands[-1]) < fig.data.index(_trace(fig, "rhythm II"))  # behind traces

    def heights(trace, row):
        y = np.asarray(trace.y, dtype=float)
        return np.nanmax(y) - paper.row_baseline_mm(row)

    row1 = _trace(fig, "saliency row II/aVL/V2/V5")
    assert heights(row1, 1) == pytest.approx(paper.BAND_HALF_MM * 0.5)
    rhythm = _trace(fig, "saliency rhythm II")
    assert heights(rhythm, 3) == pytest.approx(paper.BAND_HALF_MM)
    x = np.asarray(rhythm.x, dtype=float)
    y = np.asarray(rhythm.y, dtype=float)
    raised = x[y > paper.row_baseline_mm(3) + 1e-6]
    assert raised.min() == pytest.approx(paper.CAL_MARGIN_MM + 5.0 * 25.0)
    assert raised.max() == pytest.approx(paper.CAL_MARGIN_MM + 5.04 * 25.0)
    # Row 0 has no saliency: its band is flat on the baseline.
    assert heights(_trace(fig, "saliency row I/aVR/V1/V4"), 0) == pytest.approx(0.0)


def test_per_lead_saliency_and_bad_shape():
    data = _record()
    per_lead = np.linspace(0, 1, 12)
    fig = ecg_paper_figure(data, FS, STANDARD_LEADS, saliency=per_lead)
    row2 = _trace(fig, "saliency row III/aVF/V3/V6")
    y = np.asarray(row2.y, dtype=float)
    assert np.nanmax(y) - paper.row_baseline_mm(2) == pytest.approx(paper.BAND_HALF_MM)  # V6 = peak
    with pytest.raises(ValueError, match="saliency has shape"):
        ecg_paper_figure(data, FS, STANDARD_LEADS, saliency=np.ones((12, 10)))


def test_short_record_fills_only_the_columns_it_has():
    data = _record(seconds=4.0)
    fig = ecg_paper_figure(data, FS, STANDARD_LEADS)
    row0 = _trace(fig, "row I/aVR/V1/V4")
    x = np.asarray(row0.x, dtype=float)
    assert np.sum(~np.isnan(x)) == 2000  # 2.5 s of I + 1.5 s of aVR, nothing of V1/V4
    assert np.nanmax(x) == pytest.approx(paper.CAL_MARGIN_MM + 1999 / FS * 25.0, abs=1e-3)
    rhythm = np.asarray(_trace(fig, "rhythm II").x, dtype=float)
    assert np.sum(~np.isnan(rhythm)) == 2000
    assert any("shorter than the 10 s page" in a.text for a in fig.layout.annotations)
    assert len(_labels(fig)) == 13  # every lead still labelled


def test_six_lead_record_labels_chest_leads_absent():
    limb = list(STANDARD_LEADS[:6])
    fig = ecg_paper_figure(_record(n_leads=6), FS, limb)
    labels = _labels(fig)
    assert labels.count("V1 (absent)") == 1 and sum("(absent)" in t for t in labels) == 6
    assert fig.layout.meta["absent_leads"] == list(STANDARD_LEADS[6:])
    x = np.asarray(_trace(fig, "row I/aVR/V1/V4").x, dtype=float)
    assert np.sum(~np.isnan(x)) == 2500  # I and aVR only


def test_long_record_pages_and_odd_rates():
    fs = 257.0
    n = int(30 * fs)
    data = np.zeros((12, n), dtype=np.float32)
    fig = ecg_paper_figure(data, fs, STANDARD_LEADS, start=12.0)
    custom = np.asarray(_trace(fig, "rhythm II").customdata, dtype=float)
    times = custom[~np.isnan(custom[:, 0]), 0]
    assert times.min() == pytest.approx(round(12.0 * fs) / fs)
    assert times.max() - times.min() < 10.0
    assert any("showing 12.0–22.0 s of 30.0 s" in a.text for a in fig.layout.annotations)
    # Columns tile the page without overlap or gap at a rate where 2.5 s is not whole samples.
    row = np.asarray(_trace(fig, "row I/aVR/V1/V4").customdata, dtype=float)[:, 0]
    row = row[~np.isnan(row)]
    assert len(row) == len(times) and np.all(np.diff(row) > 0)


def test_missing_rhythm_lead_falls_back_and_bad_input_is_refused():
    names = ["I", "III", "aVR", "aVL", "aVF", "V1"]
    fig = ecg_paper_figure(_record(n_leads=6), FS, names, rhythm_lead="II")
    assert fig.layout.meta["rhythm_lead"] == "I"
    with pytest.raises(ValueError, match="expected \\(12, n_samples\\)"):
        ecg_paper_figure(np.zeros((6, 100)), FS, STANDARD_LEADS)
    with pytest.raises(ValueError, match="sampling rate"):
        ecg_paper_figure(np.zeros((12, 100)), 0.0, STANDARD_LEADS)
