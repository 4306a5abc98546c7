"""Operating the pipeline: incremental runs (which files and records are new), the incoming-file
sensor's cursor logic, and the run configuration of the incremental job."""
