"""Resources shared by every stage, and the executor: steps run in one process because the
embedded DuckDB warehouse has a single writer."""

import dagster as dg

from cdp_pipelines.resources import default_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources=default_resources(), executor=dg.in_process_executor)
