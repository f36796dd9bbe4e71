"""ecgcore: the engine of the ECG transfer workbench (no Streamlit in here)."""

__version__ = "0.1.0"
