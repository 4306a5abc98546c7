"""Context stage."""
