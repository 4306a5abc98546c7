"""Run config of the steps that can refresh only the customers a run changed."""

import dagster as dg


class IncrementalRefreshConfig(dg.Config):
    """`incremental: true` (set by the incremental job) refreshes only the rows of customers
    changed since the table was last built; false (the default) rebuilds the whole table."""

    incremental: bool = False
