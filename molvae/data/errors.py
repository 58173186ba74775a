"""The one error a data file raises when it cannot be used at all.

Its own module so that the readers and the MOSES fetcher both raise it without importing each
other.
"""

from __future__ import annotations


class DataError(ValueError):
    """A data file that cannot be used at all (the message is one sentence naming the file)."""
