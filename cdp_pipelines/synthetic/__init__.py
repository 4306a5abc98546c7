"""Synthetic omnichannel customer data with ground truth, for demos, tests and benchmarks."""

from cdp_pipelines.synthetic.generator import DEFAULT_SEED, GenerationSummary, generate_dataset

__all__ = ["DEFAULT_SEED", "GenerationSummary", "generate_dataset"]
