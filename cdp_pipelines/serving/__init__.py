"""Serving: publish warehouse tables to PostgreSQL behind stable views; look customers up."""

from cdp_pipelines.serving.client import ServingClient
from cdp_pipelines.serving.lookup import lookup
from cdp_pipelines.serving.postgres import ServingConnectionError, ServingError
from cdp_pipelines.serving.publish import PublishError, PublishResult, publish
from cdp_pipelines.serving.schema import init_serving
from cdp_pipelines.serving.versions import current_version, rollback

__all__ = [
    "PublishError", "PublishResult", "ServingClient", "ServingConnectionError", "ServingError",
    "current_version", "init_serving", "lookup", "publish", "rollback",
]
