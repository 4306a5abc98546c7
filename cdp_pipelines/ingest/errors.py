"""Errors raised by ingestion, worded for the person who owns the data rather than the code.

Both carry a complete, human-readable message (file, source entry or column, and the problem), so
callers can show ``str(error)`` as-is, for example as the description of a failed blocking check,
without a traceback.
"""

from __future__ import annotations


class SourcesConfigError(ValueError):
    """The sources file is missing, not valid YAML, or declares a source incorrectly."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SourceContractError(Exception):
    """A source file breaks its declared contract, so none of its rows should be trusted yet.

    Row-level problems are quarantined instead; this is for problems that concern the whole file
    or source: no files, empty files, missing columns, too many duplicate ids or bad timestamps.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        file: str | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.file = file
        self.column = column

    def __str__(self) -> str:
        return self.message
