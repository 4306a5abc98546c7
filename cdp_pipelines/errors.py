"""Telling a user's mistake from a bug, wherever it surfaces.

Every stage raises its own readable error for bad configuration (a ValueError subclass defined
in this package: SourcesConfigError, IdentityConfigError, SegmentConfigError, ...). Dagster wraps
them when it loads definitions or runs a step; `user_error_in` finds them again so the CLI can
print one line instead of a traceback.
"""

from __future__ import annotations


def _is_ours(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return module.startswith("cdp_pipelines.") and isinstance(error, ValueError)


def user_error_in(error: BaseException) -> BaseException | None:
    """The first project configuration error in `error`'s cause chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _is_ours(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
