"""Profiles stage."""
