"""Telling a user's mistake from a bug, wherever it surfaces.

Every stage raises its own readable error for bad configuration (a ValueError subclass defined
in this package: SourcesConfigError, IdentityConfigError, SegmentConfigError, ...), and serving
raises a ServingError when PostgreSQL cannot be reached or refuses what it is asked. Dagster
wraps them when it loads definitions or runs a step; `user_error_in` finds them again so the CLI
can print one line instead of a traceback. A step that failed during a run leaves only Dagster's
serialized copy of its error in the event log; `user_error_in_serialized` reads that copy the
same way.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo


def is_user_error_class(cls: type) -> bool:
    """A project error whose message tells the user what to fix in their input."""
    if not (cls.__module__ or "").startswith("cdp_pipelines."):
        return False
    if issubclass(cls, ValueError):
        return True
    serving = sys.modules.get("cdp_pipelines.serving.postgres")  # loaded wherever one can be raised
    return serving is not None and issubclass(cls, serving.ServingError)


def _is_ours(error: BaseException) -> bool:
    return is_user_error_class(type(error))


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


def one_line(text: str) -> str:
    """A message on one line: its lines joined, blank ones dropped."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _class_named(qualified: str) -> type | None:
    """The class `module.Name` names, if its module can be imported and it is a class."""
    module_name, _, name = qualified.rpartition(".")
    if not module_name.startswith("cdp_pipelines."):
        return None
    try:
        found = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def _user_message(info: SerializableErrorInfo) -> str | None:
    """The message of a serialized project user error ("module.Class: message"), else None."""
    head, _, message = info.message.partition(":")
    cls = _class_named(head.strip()) if info.cls_name and head.strip().endswith(info.cls_name) else None
    if cls is None or not is_user_error_class(cls):
        return None
    return one_line(message) or cls.__name__


def user_error_in_serialized(info: SerializableErrorInfo | None) -> str | None:
    """`user_error_in` for an error Dagster serialized: the one-line message of the first project
    user error in its cause and context chain, if any."""
    seen: set[int] = set()
    while info is not None and id(info) not in seen:
        message = _user_message(info)
        if message is not None:
            return message
        seen.add(id(info))
        info = info.cause or info.context
    return None
