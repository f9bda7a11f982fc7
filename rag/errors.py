"""Errors of the answer layer; `UserError` is the one base for problems a user can fix (see `index.errors`)."""

from __future__ import annotations

from index.errors import UserError

__all__ = ["UserError"]
