"""The optional password gate (login_gate.py, called by app.py before st.navigation).

With `[password_gate] sha256` in the secrets no page content renders (not the default
page, not a sub-page Streamlit runs alone) before the right password; a wrong one gets a
message; the right one shows the pages. Without it the app works as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from streamlit.testing.v1 import AppTest

from login_gate import password_matches

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
DIGEST = hashlib.sha256(PASSWORD.encode()).hexdigest()


def _app(page: str | None = None, digest: str | None = DIGEST) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    if digest is not None:
        at.secrets["password_gate"] = {"sha256": digest}
    if page:
        at.switch_page(page)
    return at.run()


def _everything(at: AppTest) -> str:
    """Every text the run produced, main area and sidebar."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "error", "warning",
             "success", "code", "metric", "button", "dataframe", "selectbox")
    parts: list[str] = []
    for kind in kinds:
        for element in getattr(at, kind):
            parts.append(str(getattr(element, "label", "") or ""))
            parts.append(str(getattr(element, "value", "") or ""))
    return "\n".join(parts)


def _assert_locked(at: AppTest) -> None:
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    text = _everything(at)
    for leak in ("ECG transfer workbench", "Datasets", "ECGCORE_HOME", "No datasets yet", "Jobs"):
        assert leak not in text, f"{leak!r} rendered before sign-in"
    assert [e.label for e in at.text_input] == ["Password"]


def test_no_page_renders_before_the_right_password(workspace: Path) -> None:
    at = _app()
    _assert_locked(at)
    _assert_locked(_app("pages/datasets.py"))  # a sub-page run alone goes through app.py too
    _assert_locked(_app("pages/jobs.py"))

    at.text_input[0].input("wrong password")
    at.button[0].click().run()
    _assert_locked(at)
    assert [e.value for e in at.error] == ["Wrong password."]

    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "ECG transfer workbench"  # the Home page
    assert [c.value for c in at.sidebar.code] == [str(workspace.resolve())]
    assert not at.text_input, "the password field is gone after sign-in"
    assert PASSWORD not in str(dict(at.query_params)), "the password is never put in the URL"

    at.switch_page("pages/datasets.py").run()  # the session stays signed in across pages
    assert not at.exception and at.title[0].value == "Datasets"

    next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    _assert_locked(at)


def test_without_a_password_the_app_is_open(workspace: Path) -> None:
    at = _app(digest=None)
    assert not at.exception
    assert at.title[0].value == "ECG transfer workbench"
    assert not at.text_input and "Sign in" not in _everything(at)


def test_a_malformed_hash_keeps_the_app_locked(workspace: Path) -> None:
    at = _app(digest=PASSWORD)  # the password itself instead of its hash
    assert not at.exception
    assert "must be 64 hex digits" in at.error[0].value
    assert "ECG transfer workbench" not in _everything(at)


def test_password_comparison() -> None:
    assert password_matches(PASSWORD, DIGEST) and password_matches(PASSWORD, DIGEST.upper())
    assert not password_matches(PASSWORD + " ", DIGEST) and not password_matches("", DIGEST)
