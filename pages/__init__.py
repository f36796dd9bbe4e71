"""The app's pages (registered in app.py with st.navigation, always run through app.py).

`require_router()` works around a Streamlit behaviour: because this folder is named
`pages/`, Streamlit starts each server in its legacy multipage mode until a run calls
st.navigation. In that first run, a request for a sub-page (e.g. a shared link to
/datasets?dataset=…) runs the page file alone, without app.py: no page config, no
shared sidebar, navigation by file name. (AppTest does the same on every run after
`switch_page`.) Each page calls `require_router()` first: when the page runs alone,
it runs app.py in its place, whose st.navigation leaves legacy mode and routes to the
same page (found by its url_path; query string and widget values are kept), then ends
the outer run. Running app.py here rather than rerunning keeps a button click that
started the run.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP = Path(__file__).resolve().parent.parent / "app.py"


def require_router() -> None:
    """Call first in every page: run app.py instead when Streamlit ran the page alone."""
    if getattr(PagesManager, "uses_pages_directory", False):
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()


def report_downloads(container: Any, stem: str, make: Callable[[str], bytes]) -> None:
    """PDF and PNG buttons for the one-page report (Inspect and Predict); `make(fmt)` builds
    it only when a button is clicked, so a page view never pays for a report."""
    for column, fmt in zip(container.columns(2), ("pdf", "png")):
        column.download_button(
            f"Report ({fmt.upper()})", key=f"report_{fmt}", on_click="ignore",
            data=lambda fmt=fmt: make(fmt), file_name=f"{stem}.{fmt}",
            mime="application/pdf" if fmt == "pdf" else "image/png")


def show_provenance(container: Any, provenance: Any) -> None:
    """What a model's predictions rest on (an `ecgcore.views.provenance.Provenance`), the same on
    Inspect and Predict: its one-line provenance, the research-use line, and its warning
    (red when the training data is synthetic, yellow when that could not be checked)."""
    from ecgcore.views.display import escape_markdown
    from ecgcore.views.provenance import RESEARCH_USE

    if provenance.warning:
        alert = container.error if provenance.synthetic else container.warning
        alert(escape_markdown(provenance.warning), icon="⚠️")
    container.markdown(escape_markdown(provenance.line()))
    container.markdown(f"**{RESEARCH_USE}**")
