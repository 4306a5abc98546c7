"""Whole graph at scale, measured against bare Splink on the same linkage input.

Usage: python benchmarks/pipeline_bench.py --persons 250000 [--workdir DIR] [--serving-url URL]
       [--no-serving] [--no-bare] [--json out.json]

Generates the data (or reuses a generation in WORKDIR/data), runs the full_refresh job on a fresh
warehouse and a fresh PostgreSQL database, and prints per-stage wall time, peak memory, records
and comparisons per second and the pipeline's Splink time over bare Splink's. The implementation
is cdp_pipelines/bench.py; docs/performance.md has the figures and how to read them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cdp_pipelines.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
