"""The one base class for problems a user causes and can fix (a bad file, a missing index, a busy port).

Front ends (the CLI, the API) turn a `UserError` into one line or a 4xx naming what to fix; any other
exception is a bug and keeps its traceback. Error classes elsewhere inherit from it as well as from the
built-in class they already extend, so existing `except ValueError` / `except RuntimeError` still work.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what and how."""
