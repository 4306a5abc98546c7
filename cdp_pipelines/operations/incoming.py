"""What the incoming-files sensor sees: the source files present now, and which are new.

The sensor never opens the warehouse (DuckDB has one writer, and a run may be writing): it
compares file sizes and modification times with its cursor, a JSON object
``{path: [size, mtime]}`` of the files seen at the previous evaluation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cdp_pipelines.ingest.errors import SourceContractError, SourcesConfigError
from cdp_pipelines.ingest.sources_config import load_sources, resolve_source_files

Fingerprints = dict[str, list[float]]


def scan_source_files(sources_file: Path, data_dir: Path) -> Fingerprints:
    """Every file the declared sources would read now, as path -> [size, mtime]."""
    sources = load_sources(sources_file)
    seen: Fingerprints = {}
    for source in sources.sources:
        try:
            files = resolve_source_files(source, data_dir)
        except SourceContractError:
            continue  # no file yet: nothing to ingest for this source
        for path in files:
            stat = path.stat()
            seen[str(path)] = [stat.st_size, stat.st_mtime]
    return seen


def parse_cursor(cursor: str | None) -> Fingerprints:
    """The previous evaluation's files; a missing or unreadable cursor means none seen yet."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def new_or_modified(previous: Fingerprints, current: Fingerprints) -> list[str]:
    """Files that appeared or whose size or modification time changed, sorted."""
    return sorted(path for path, stamp in current.items() if list(previous.get(path, [])) != list(stamp))


def run_key(changed: list[str], current: Fingerprints) -> str:
    """The same new files (with the same size and time) always give the same run key."""
    text = "\n".join(f"{path}\t{current[path][0]}\t{current[path][1]}" for path in sorted(changed))
    return "incoming-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def evaluate(cursor: str | None, sources_file: Path, data_dir: Path) -> tuple[list[str], str, str]:
    """(changed files, run key, new cursor) for one sensor evaluation.

    Raises SourcesConfigError when the sources file cannot be read.
    """
    current = scan_source_files(sources_file, data_dir)
    changed = new_or_modified(parse_cursor(cursor), current)
    return changed, run_key(changed, current) if changed else "", json.dumps(current, sort_keys=True)


__all__ = ["SourcesConfigError", "evaluate", "new_or_modified", "parse_cursor", "run_key", "scan_source_files"]
