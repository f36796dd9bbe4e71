"""The workbench app: `streamlit run app.py`.

A router and nothing else: every page is registered here with a stable url_path
(so links keep working), and the sidebar shows which workspace ($ECGCORE_HOME)
the app reads. Pages are thin views over `ecgcore`; nothing here trains or
reads signals itself.
"""

from __future__ import annotations

import streamlit as st

from ecgcore import workspace
from ecgcore.jobs.worker_status import local_worker_status
from login_gate import require_login

st.set_page_config(page_title="ECG transfer workbench", page_icon=":material/monitor_heart:",
                   layout="wide")
require_login()  # off unless .streamlit/secrets.toml sets [password_gate] sha256

# The default page is served at the root URL ("/"); every other page at its url_path.
PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/datasets.py", title="Datasets", icon=":material/database:", url_path="datasets"),
    st.Page("pages/launch.py", title="Launch", icon=":material/rocket_launch:", url_path="launch"),
    st.Page("pages/jobs.py", title="Jobs", icon=":material/pending_actions:", url_path="jobs"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/inspect.py", title="Inspect", icon=":material/troubleshoot:", url_path="inspect"),
    st.Page("pages/predict.py", title="Predict", icon=":material/upload_file:", url_path="predict"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.caption("Workspace ($ECGCORE_HOME)")
    st.code(str(workspace.home()), language=None, wrap_lines=True)
    st.caption(local_worker_status())

page.run()
