"""In a real browser: materialize an hour from the asset graph and read its metadata in the UI.

Headless Chromium from Debian (``/usr/bin/chromium``) driven by Playwright; the
browser Playwright would download is never used. Screenshots of the run, the
asset pages and the asset graph go to ``test-artifacts/e2e/``. This module runs
after the GraphQL and CLI ones (file order), so the graph shows their hours too.
FRAUD_E2E_UPDATE_SCREENSHOT=1 also refreshes the README's copy of the graph.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from fraud_assets_tests.e2e.harness import System, hour_key

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCORING_PATH_GROUPS = ("ingestion", "features", "models", "scoring", "reporting")
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 420_000
SVG_IMAGE = "img[src^='data:image/svg+xml']"
README_SCREENSHOT = Path(__file__).parent / "screenshots" / "asset_graph.png"


@pytest.fixture(scope="module")
def page(system: System, artifacts: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make system-deps` (Debian chromium)"
    # The first visit greets with a newsletter dialog; mark it seen as its "Skip" button does.
    system.graphql("mutation { setNuxSeen }")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1800, "height": 1000})
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture
def screenshot_on_failure(page, artifacts: Path, request):
    yield
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        page.screenshot(path=str(artifacts / f"failure_{request.node.name}.png"), full_page=True)


def visible(page, text: str):
    """The first visible element with exactly this text (hidden copies live in side panels)."""
    return page.get_by_text(text, exact=True).filter(visible=True).first


def open_chart(page, key: str, screenshot: Path) -> None:
    """Long markdown metadata sits behind "[Show Markdown]"; the chart is an image in it."""
    row = page.locator("tr").filter(has=visible(page, key)).first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.locator(SVG_IMAGE).first.wait_for()
    box = dialog.locator(SVG_IMAGE).first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100, f"{key} chart not rendered: {box}"
    page.screenshot(path=str(screenshot))
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")


@pytest.mark.usefixtures("screenshot_on_failure")
def test_materialize_an_hour_from_the_job_graph_and_read_its_metadata(
    system: System, page, artifacts: Path
):
    hour = hour_key(system.plan.hours(2, 2)[0])
    page.goto(f"{system.base_url}/locations/fraud_assets/jobs/ensemble_anomaly_detection")
    page.get_by_text("Materialize all").first.click()
    dialog = page.get_by_role("dialog")
    partitions = dialog.get_by_placeholder("No matching partitions")
    partitions.fill(hour)
    partitions.press("Enter")
    dialog.get_by_role("button", name="Launch 1 run").click()
    dialog.wait_for(state="detached")

    # The toast links to the new run; its status tag changes in place while the daemon runs it.
    page.get_by_role("link", name="View").first.click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/runs/", 1)[1].split("?")[0]
    try:
        page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first.wait_for(
            timeout=RUN_TIMEOUT_MS
        )
    finally:
        page.screenshot(path=str(artifacts / "run_page.png"))
    status = system.run(run_id)["status"]
    assert status == "SUCCESS", f"run {run_id} {status}: {system.run_failures(run_id)}"
    visible(page, "Success").wait_for()
    page.get_by_text(f"partition: {hour}").first.wait_for()

    # The hour on the asset page: row count, decision counts, the decision table, the chart.
    page.goto(
        f"{system.base_url}/assets/ensemble_decision?view=partitions&partition="
        + urllib.parse.quote(hour)
    )
    for text in (
        "dagster/row_count",
        "decisions/approved",
        "decisions/review",
        "decisions/blocked",
    ):
        visible(page, text).wait_for()
    page.get_by_text("decision", exact=True).filter(visible=True).first.wait_for()  # the table
    page.screenshot(path=str(artifacts / "asset_ensemble_decision.png"), full_page=True)
    open_chart(page, "risk_distribution", artifacts / "chart_risk_distribution.png")


@pytest.mark.usefixtures("screenshot_on_failure")
def test_training_curve_is_an_image_on_the_autoencoder_page(system: System, page, artifacts):
    page.goto(f"{system.base_url}/assets/train_autoencoder")
    visible(page, "training_curve_plot").wait_for()
    page.screenshot(path=str(artifacts / "asset_train_autoencoder.png"), full_page=True)
    open_chart(page, "training_curve_plot", artifacts / "chart_training_curve.png")


@pytest.mark.usefixtures("screenshot_on_failure")
def test_asset_graph_screenshot(system: System, page, artifacts: Path):
    """The hourly path with its groups expanded, big enough to read every node."""
    page.set_viewport_size({"width": 2200, "height": 1100})
    selection = " or ".join(f"group:{group}" for group in SCORING_PATH_GROUPS)
    page.goto(f"{system.base_url}/asset-groups~{urllib.parse.quote(selection)}/")
    page.get_by_text("Materialize all").first.wait_for()
    page.get_by_text("Hide navigation").click()
    page.keyboard.press("Alt+e")  # expand every group
    for name in ("extract_transactions", "production_models", "ensemble_decision", "send_alerts"):
        visible(page, name).wait_for()
    page.wait_for_timeout(1500)  # let zoom-to-fit settle
    page.screenshot(path=str(artifacts / "asset_graph.png"))
    if os.environ.get("FRAUD_E2E_UPDATE_SCREENSHOT"):  # the README's copy
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(artifacts / "asset_graph.png", README_SCREENSHOT)
