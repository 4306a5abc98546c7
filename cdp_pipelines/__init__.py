"""Customer data platform: ingest every channel, resolve identities, publish context tables."""

__version__ = "0.1.0"
