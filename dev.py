#!/usr/bin/env python3
"""One-command setup for developers and CI: `python3 dev.py run` or `python3 dev.py test`.

Creates `.venv` beside this file, installs the project (editable, with test extras) when
`pyproject.toml` changed since the last install, then runs the CDP on the committed sample
(`run`) or the test suite (`test`). Needs only Python 3.11+ and the package index.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
MARKER = VENV / ".cdp-installed"
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def setup() -> None:
    """Create the virtual environment and install the project once per pyproject change."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print(f"Creating virtual environment in {VENV} ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if MARKER.exists() and MARKER.read_text() == _fingerprint():
        return
    print("Installing the project and its pinned dependencies (first run takes a few minutes) ...",
          file=sys.stderr, flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    MARKER.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    usage = "usage: python3 dev.py run [cdp run options] | test [pytest options] | setup"
    if not argv or argv[0] not in {"run", "test", "setup"}:
        print(usage, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        setup()
    except subprocess.CalledProcessError as error:
        print(f"Setup failed while running: {' '.join(map(str, error.cmd))}", file=sys.stderr)
        return 1
    env = dict(os.environ)
    if command == "setup":
        return 0
    if command == "run":
        return subprocess.call([str(BIN / "cdp"), "run", *rest], cwd=ROOT, env=env)
    env.setdefault("CDP_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL)
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
