"""Segments stage."""
