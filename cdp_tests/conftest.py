"""Fixtures shared by the whole suite (PostgreSQL ones skip, or fail under CI=true, without a server)."""

from postgres_fixtures import *  # noqa: F401,F403
