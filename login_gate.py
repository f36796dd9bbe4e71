"""An optional password in front of the whole app, for a deployment on a shared network.

Off unless `.streamlit/secrets.toml` holds a password hash:

    [password_gate]
    sha256 = "<hex SHA-256 of the password>"   # python -c "import hashlib,getpass; print(hashlib.sha256(getpass.getpass().encode()).hexdigest())"

app.py calls `require_login()` before `st.navigation`, so no page (nor a page Streamlit
runs alone, which goes through app.py via `pages.require_router`) renders until the
session has given the password. Only the hash is stored; the typed password is compared
in constant time (hmac.compare_digest), sent in a form (never in the URL), never logged,
and not kept after sign-in (only a flag in the session). Single sign-on with an OIDC
provider is Streamlit's own `st.login` instead (see README, "Deploying behind a login").
This module lives outside `ecgcore` because the engine never imports streamlit.
"""

from __future__ import annotations

import hashlib
import hmac

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

SECTION = "password_gate"
SIGNED_IN = "_password_gate_signed_in"


def password_hash() -> str | None:
    """The configured SHA-256 hex digest, or None when no password is configured (gate off)."""
    try:
        section = st.secrets.get(SECTION)
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return None
    if not section:
        return None
    digest = str(section.get("sha256", "")).strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        st.error(f"`.streamlit/secrets.toml` [{SECTION}] sha256 must be 64 hex digits "
                 "(the SHA-256 of the password); the app stays locked until it is.")
        st.stop()
    return digest


def password_matches(password: str, digest: str) -> bool:
    """True when sha256(password) equals `digest`, compared in constant time."""
    typed = hashlib.sha256(password.encode("utf-8")).hexdigest()
    return hmac.compare_digest(typed, digest.lower())


def require_login() -> None:
    """Show a sign-in form and stop the run until this session gave the right password."""
    digest = password_hash()
    if digest is None:
        return
    if st.session_state.get(SIGNED_IN):
        if st.sidebar.button("Sign out", key="_password_gate_sign_out"):
            del st.session_state[SIGNED_IN]
            st.rerun()
        return
    st.title("Sign in")
    with st.form("_password_gate_form"):
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(password, digest):
            st.session_state[SIGNED_IN] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()
