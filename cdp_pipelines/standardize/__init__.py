"""Standardize stage."""
