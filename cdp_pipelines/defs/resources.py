"""Resources shared by every stage, and the executor: steps run on threads of one process,
because the embedded DuckDB warehouse takes one writing process (see operations/threaded_executor.py)."""

import dagster as dg

from cdp_pipelines.operations.threaded_executor import threaded_executor
from cdp_pipelines.resources import default_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources=default_resources(), executor=threaded_executor)
