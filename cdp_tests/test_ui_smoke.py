"""The Dagster UI in a real browser: after a run, the asset graph shows the stage groups and an
identity asset's page shows its materialization metadata.

Needs Chromium from the system packages (`apt-get install chromium`) and Playwright for Python
(the dev extra); Playwright's own browser download is never used. Without Chromium the test is
skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cdp_pipelines import settings

CHROMIUM = os.environ.get("CDP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
GROUPS = ("ingest", "standardize", "identity")

pytestmark = pytest.mark.slow


def _require_browser():
    in_ci = os.environ.get("CI", "").lower() == "true"
    problem = None
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        problem = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if problem:
        if in_ci:
            pytest.fail(problem)
        pytest.skip(problem)
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer within {seconds}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    """A small generated dataset resolved up to identity, recorded in a fresh instance."""
    import dagster as dg

    from cdp_pipelines.runner import dagster_instance, load_definitions
    from cdp_pipelines.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("ui")
    env = {
        settings.ENV_DATA_DIR: str(root / "data"),
        settings.ENV_WAREHOUSE: str(root / "warehouse.duckdb"),
        settings.ENV_ARTIFACTS_DIR: str(root / "artifacts"),
        settings.ENV_EXPORT_DIR: str(root / "exports"),
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        generate_dataset(persons=300, seed=11, out_dir=root / "data")
        defs = load_definitions()
        job = defs.resolve_job_def("full_refresh")
        xref = dg.AssetKey(["identity", "customer_xref"])
        selection = (dg.AssetSelection.assets(xref).upstream().required_multi_asset_neighbors()
                     .resolve(defs.resolve_asset_graph()))
        result = job.execute_in_process(instance=dagster_instance(), asset_selection=list(selection),
                                        raise_on_error=False)
        assert result.success
    return root, env


@pytest.fixture(scope="module")
def webserver(materialized):
    root, env = materialized
    port = _free_port()
    log = root / "webserver.log"
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml",
               "-h", "127.0.0.1", "-p", str(port)]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=settings.PROJECT_ROOT, env={**os.environ, **env},
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, process, log)
        yield url
    finally:
        # The webserver starts a code server of its own: stop the whole process group.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page():
    executable = _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def test_asset_graph_shows_the_stage_groups(page, webserver):
    page.goto(f"{webserver}/asset-groups", wait_until="domcontentloaded")
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)


def test_identity_asset_page_shows_materialization_metadata(page, webserver):
    page.goto(f"{webserver}/assets/identity/customer_xref", wait_until="domcontentloaded")
    page.get_by_text("cluster_size_distribution").first.wait_for(timeout=60_000)
    assert page.get_by_text("customers", exact=True).count() >= 1
