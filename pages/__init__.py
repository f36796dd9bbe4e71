"""The app's pages (registered in app.py with st.navigation; run them through app.py).

`require_router()` works around a Streamlit behaviour: because this folder is named
`pages/`, Streamlit starts each server in its legacy multipage mode, and the first
request for a sub-page (e.g. a shared link to /datasets?dataset=…) runs that page file
alone, without app.py (no page config, no shared sidebar, file-name navigation).
Leaving legacy mode and rerunning makes Streamlit run app.py, whose st.navigation then
routes to the same page (the page hash is its url_path in both modes, and the query
string is kept).
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def require_router() -> None:
    """Call first in every page: rerun through app.py when Streamlit ran the page alone."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
