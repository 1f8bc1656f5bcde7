"""The web app in a real browser: Debian's Chromium driven by playwright, with no internet.

Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``), so nothing leaves the
machine; every request to another address is recorded and the test fails if there was one.
Each tab is exercised (upload → overlay, t-SNE, a tiny training job, the model card) and a
screenshot of it is saved to ``docs/screenshots/<tab>.png`` for the README.

Needs ``apt-get install chromium``; skipped with that hint when Chromium is not found.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from app.serving.checkpoints import SHIPPED_DIR
from app.serving.context import example_images
from tests.test_app import make_checkpoints, serve

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
LOCAL = ("http://127.0.0.1", "data:", "blob:")
TIMEOUT_MS = 120_000
JOB_TIMEOUT_MS = 600_000  # the training job: ~100 s on a quiet 2-core machine, 3× that on a slow CI runner
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found; install it with 'apt-get install chromium'"),
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A browser page on a freshly launched app (shipped checkpoints when present)."""
    root = tmp_path_factory.mktemp("browser")
    shipped = SHIPPED_DIR if any(SHIPPED_DIR.glob("*.safetensors")) else make_checkpoints(root / "checkpoints")
    demo, url = serve(root, shipped)
    outside: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.on("request", lambda request: None if request.url.startswith(LOCAL) else outside.append(request.url))
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(url)
        tab.wait_for_selector("#attention-report")
        yield tab
        browser.close()
    demo.tada_context.jobs.stop(None)
    demo.tada_context.jobs.wait(60)
    demo.close()
    assert not outside, f"the page tried to reach the internet: {outside[:5]}"


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for toast in page.locator(".toast-close").all():
        with contextlib.suppress(sync_api.Error):  # the toast may close by itself in the meantime
            toast.click(timeout=2_000)
    page.wait_for_timeout(800)  # let plots and images settle
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_page_opens_on_a_result_with_thumbnails(page):
    page.wait_for_selector("#attention-report .tada-card")  # no button pressed yet
    assert page.locator("#attention-report img.tada-overlay").count() >= 2
    assert page.locator("#attention-source-thumbs img").count() >= 1
    assert page.locator("#attention-target-thumbs img").count() >= 1


def test_shift_examples_light_up_the_planted_label(page):
    if not (SHIPPED_DIR / "tada_shift_text.safetensors").is_file():
        pytest.skip("needs the shipped shift model")
    page.locator("#attention-shift-examples").click()
    page.wait_for_selector("#attention-report .tada-card-head:has-text('target_person.png')")
    report = page.locator("#attention-report").inner_text()
    assert "tada_shift_text" in report and "No shift map" not in report
    assert page.locator("#attention-view input[value=shift]").is_checked()
    screenshot(page, "attention_shift")


def test_emoji_examples_open_the_shipped_style_model(page):
    if not (SHIPPED_DIR / "tada_emoji_twitter_google.safetensors").is_file():
        pytest.skip("needs the shipped emoji model")
    page.locator("#attention-emoji-examples").click()
    page.wait_for_selector("#attention-target td.filename[aria-label='target_transport-ground.png']")  # loaded
    page.get_by_role("button", name="Show attention").click()
    page.wait_for_selector("#attention-report .tada-card-head:has-text('target_transport-ground.png')")
    report = page.locator("#attention-report").inner_text()
    assert "tada_emoji_twitter_google" in report and "No shift map" not in report
    assert page.locator("#attention-report .tada-card").count() == 8
    assert page.locator("#attention-view input[value=shift]").is_checked()
    screenshot(page, "attention_emoji")


def test_attention_upload_shows_overlay(page):
    examples = example_images()
    page.locator("#attention-clear").click()
    page.get_by_text("Upload images to see their attention").wait_for()  # cleared before the uploads
    for role in ("source", "target"):
        image = Path(examples[role][1])
        page.locator(f"#attention-{role} input[type=file]").set_input_files(image)
        page.wait_for_selector(f"#attention-{role} td.filename[aria-label='{image.name}']")  # uploaded
    page.get_by_role("button", name="Show attention").click()
    page.wait_for_selector("#attention-report .tada-card >> nth=1")
    cards = page.locator("#attention-report .tada-card")
    assert cards.count() == 2, page.locator("#attention-report").inner_text()[:2000]
    assert page.locator("#attention-report img.tada-overlay").count() >= 2
    assert "predicted" in cards.first.inner_text()
    screenshot(page, "attention")


def test_features_tsne_plot(page):
    page.get_by_role("tab", name="Features").click()
    points = page.locator("#tsne-points input[type=number]")
    points.fill("80")
    points.press("Enter")
    page.get_by_role("button", name="Compute t-SNE").click()
    page.wait_for_selector("#tsne-figure img")
    assert page.get_by_text("A-distance d_A").is_visible()
    assert "class-conditional MMD" in page.locator("body").inner_text()  # the headline, with its interval
    screenshot(page, "features")


def test_train_job_progress_and_completion(page):
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-iters input").fill("30")
    page.locator("#train-batch input").fill("16")
    page.get_by_text("Advanced").click()
    page.locator("#train-eval-every input").fill("10")
    page.locator("#train-eval-max input").fill("200")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_selector("#train-progress [role=progressbar]")
    page.wait_for_function(
        "document.querySelector('#train-headline').innerText.includes('Finished')", timeout=JOB_TIMEOUT_MS
    )
    page.wait_for_selector("#train-probe-target img")
    assert "30 / 30 steps" in page.locator("#train-progress").inner_text()
    page.get_by_text("Advanced").click()
    screenshot(page, "train")


def test_model_card_of_the_finished_run(page):
    page.get_by_role("tab", name="Model").click()
    page.locator("#model-checkpoint input").click()
    page.get_by_role("option").filter(has_text="runs/").first.click()
    page.wait_for_function("document.querySelector('#model-card').innerText.includes('runs/')")
    page.wait_for_selector("#model-curves img")
    screenshot(page, "model")
