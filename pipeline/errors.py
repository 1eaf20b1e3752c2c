"""Errors of the pipeline that its callers tell apart."""

from __future__ import annotations


class PermanentError(Exception):
    """A failure that retrying cannot fix: the job raising it dies at once."""


class MissingRecord(PermanentError, LookupError):
    """The row a job names does not exist: retrying cannot help, so no retry."""
