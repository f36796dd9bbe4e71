"""The Datasets page in a real browser: `streamlit run app.py` + headless Chromium (Playwright).

Checks what AppTest cannot: the page is served, the URL's query parameters select the
view, and the ECG is actually drawn by plotly.js on paper. A screenshot is kept in
tmp_path for a human look.
"""

from __future__ import annotations

import re
from pathlib import Path

from browser import BROWSER_MARKS, app_env, chromium_page, streamlit_server

pytestmark = BROWSER_MARKS


def test_datasets_page_draws_the_record_in_chromium(shared_data: Path, tmp_path: Path):
    from playwright.sync_api import expect

    home = tmp_path / "workspace"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "G12EC").symlink_to(shared_data / "ecg" / "cinc2021" / "G12EC")
    with streamlit_server(app_env(home), tmp_path / "streamlit.log") as url, chromium_page() as page:
        page.goto(f"{url}/datasets?dataset=G12EC&record=E00004", wait_until="domcontentloaded")
        main = page.locator("[data-testid='stMain']")
        expect(main.get_by_role("heading", name="Datasets")).to_be_visible(timeout=30_000)
        # Routed through app.py even on a first request for a sub-page: shared sidebar.
        sidebar = page.locator("[data-testid='stSidebar']")
        expect(sidebar).to_contain_text("$ECGCORE_HOME", timeout=30_000)
        expect(sidebar.get_by_role("link", name="Home")).to_be_visible()
        metric = main.locator("[data-testid='stMetric']").filter(has_text="Readable records")
        expect(metric).to_contain_text("10", timeout=30_000)
        # The ECG: a plotly.js plot whose title names the record from the URL.
        ecg = main.locator(".js-plotly-plot").filter(has_text="G12EC / E00004")
        expect(ecg).to_have_count(1, timeout=30_000)
        expect(ecg.locator("g.trace.scatter")).to_have_count(6)  # calibration, marks, 3 rows + rhythm
        for lead in ("aVR", "V1", "V6"):
            expect(ecg.locator("g.annotation", has_text=lead).first).to_be_visible()
        ecg.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        ecg.screenshot(path=str(tmp_path / "ecg.png"))
        page.screenshot(path=str(tmp_path / "datasets_page.png"), full_page=True)
        assert "record=E00004" in page.url
        # Picking another record redraws it and writes it into the URL (links reopen it).
        main.locator("[data-testid='stSelectbox']").filter(has_text="Record").click()
        page.get_by_role("option", name="E00007").click()
        expect(main.locator(".js-plotly-plot").filter(has_text="G12EC / E00007")).to_have_count(
            1, timeout=30_000)
        expect(page).to_have_url(re.compile(r"record=E00007"))
        # The sidebar's Home link opens the root page (no "page not found" dialog).
        sidebar.get_by_role("link", name="Home").click()
        expect(main.get_by_role("heading", name="ECG transfer workbench")).to_be_visible(
            timeout=30_000)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        page.goto(url, wait_until="domcontentloaded")
        expect(main.get_by_role("heading", name="Datasets in the workspace")).to_be_visible(
            timeout=30_000)
        expect(page.get_by_text("Page not found")).to_have_count(0)
    assert (tmp_path / "ecg.png").stat().st_size > 10_000
