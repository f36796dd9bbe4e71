"""The Predict page in a real browser: upload a Challenge record through the file input and
see its probabilities (as `predict` gives them), the model's provenance with the
research-use line and (a run on the demo data) the synthetic-data warning, and the trace
with its saliency band drawn by plotly.js; the report PDF says the same and keeps its text
off the ECG grid; a corrupt upload shows a message, not a traceback."""

from __future__ import annotations

import re
from pathlib import Path

from browser import BROWSER_MARKS, app_env, chromium_page, streamlit_server
from test_report import _grid_box, _page_words, _render

from ecgcore.data.labels import class_name
from ecgcore.views.scoring import predict_files
from ecgcore.views.provenance import RESEARCH_USE, run_provenance

pytestmark = BROWSER_MARKS


def test_upload_a_record_and_see_probabilities_and_trace(run_workspace, shared_data: Path, tmp_path: Path):
    from playwright.sync_api import expect

    g12ec = shared_data / "ecg" / "cinc2021" / "G12EC"
    want = predict_files(run_workspace.run_id, [g12ec / "E00005.hea"])[0]["probabilities"]
    top = max(want, key=want.get)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "E00005.hea").write_bytes((g12ec / "E00005.hea").read_bytes())
    (broken / "E00005.mat").write_bytes((g12ec / "E00005.mat").read_bytes()[:1000])

    env = app_env(run_workspace.home, ECGCORE_AUTO_WORKER="0")
    with streamlit_server(env, tmp_path / "streamlit.log") as url, chromium_page(height=1100) as page:
        page.goto(f"{url}/predict?run={run_workspace.run_id}", wait_until="domcontentloaded")
        main = page.locator("[data-testid='stMain']")
        expect(main.get_by_role("heading", name="Predict")).to_be_visible(timeout=30_000)
        expect(main.get_by_text("Upload a record to score it")).to_be_visible(timeout=30_000)
        main.locator("input[type='file']").set_input_files([str(g12ec / "E00005.hea"),
                                                            str(g12ec / "E00005.mat")])
        expect(main.get_by_text(f"Most likely: {class_name(top)} (p = {want[top]:.3f})")).to_be_visible(
            timeout=60_000)
        prov = run_provenance(run_workspace.run_id)
        expect(main.get_by_text(f"Model: run {run_workspace.run_id}")).to_be_visible()
        expect(main.get_by_text("target_challenge (synthetic)").first).to_be_visible()
        expect(main.get_by_text(RESEARCH_USE, exact=True)).to_be_visible()
        warning = main.locator("[data-testid='stAlertContentError']").filter(
            has_text="This model was trained only on synthetic data")
        expect(warning).to_have_count(1)
        expect(warning).to_be_visible()
        expect(main.get_by_text("From the record's header: age")).to_be_visible()
        ecg = main.locator(".js-plotly-plot").filter(has_text="E00005 · Integrated Gradients")
        expect(ecg).to_have_count(1, timeout=60_000)
        # 4 saliency bands + calibration + column marks + 3 rows + rhythm strip.
        expect(ecg.locator("g.trace.scatter")).to_have_count(10, timeout=30_000)
        for lead in ("aVR", "V1", "V6"):
            expect(ecg.locator("g.annotation", has_text=lead).first).to_be_visible()
        # The report is made on click and downloads as a one-page PDF.
        with page.expect_download(timeout=60_000) as download:
            main.get_by_role("button", name="Report (PDF)").click()
        report = Path(download.value.path()).read_bytes()
        assert report.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page\b", report)) == 1
        pixels, texts, page_height = _render(report)  # the PDF rendered by PDFium
        words = _page_words(report)
        assert RESEARCH_USE in words and "tuned on validation" in words and "at 0.5" not in words
        assert f"run {run_workspace.run_id}" in words and "target_challenge (synthetic)" in words
        assert prov.headline in words and "recorded diagnoses" in words
        grid = _grid_box(pixels, page_height)
        on_grid = {text for text, box in texts if box[2] > grid[0] and box[0] < grid[2]
                   and box[3] > grid[1] and box[1] < grid[3]}
        assert on_grid <= {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
                           "25 mm/s · 10 mm/mV · 500 Hz"}, on_grid
        assert download.value.suggested_filename == f"E00005_{top.replace('|', '-')}.pdf"
        ecg.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        ecg.screenshot(path=str(tmp_path / "predict_ecg.png"))
        assert f"run={run_workspace.run_id}" in page.url

        # A fresh page with a cut .mat: one line naming the file and the reason.
        page.goto(f"{url}/predict?run={run_workspace.run_id}", wait_until="domcontentloaded")
        expect(main.get_by_text("Upload a record to score it")).to_be_visible(timeout=30_000)
        main.locator("input[type='file']").set_input_files([str(broken / "E00005.hea"),
                                                            str(broken / "E00005.mat")])
        error = main.locator("[data-testid='stAlertContentError']")
        expect(error).to_contain_text("Upload refused: E00005.hea: signal file E00005.mat is too short",
                                      timeout=30_000)
        expect(main.locator("[data-testid='stException']")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "predict_page.png"), full_page=True)
    assert (tmp_path / "predict_ecg.png").stat().st_size > 10_000
