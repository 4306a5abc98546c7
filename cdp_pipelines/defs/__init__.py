"""The defs folder: one small module per stage, each contributing its Dagster definitions."""
