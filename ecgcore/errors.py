"""The project's documented errors: each carries a message naming the input and the reason."""

from __future__ import annotations


class EcgcoreError(Exception):
    """Base of every error ecgcore raises on purpose; the CLI prints its message in one line."""


class NotADatasetError(EcgcoreError):
    """A path holds no dataset layout that any reader recognises."""


class RecordError(EcgcoreError):
    """One record cannot be read; the message names the record and the reason."""

    def __init__(self, record: str, reason: str) -> None:
        super().__init__(f"{record}: {reason}")
        self.record = record
        self.reason = reason
