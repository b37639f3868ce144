"""Open a sentitune HTML report in headless Chromium and check that it renders with all its images decoded.

    python benchmarks/check_report_render.py runs/cpu-quick            # the run's report.html
    python benchmarks/check_report_render.py report.html --screenshot shot.png

Two checks: every <img> has naturalWidth > 0 once the page has loaded (read back through --dump-dom from
an attribute a small script sets), and a screenshot of the page is not blank. Exits 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageStat

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight}));
  document.documentElement.setAttribute("data-images", JSON.stringify(images));
});
</script>"""
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--virtual-time-budget=5000"]


def find_chromium() -> str | None:
    """Path of a Chromium-family browser, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def run_browser(browser: str, args: list[str], timeout: float) -> str:
    """Run the headless browser with a throwaway profile and return its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=timeout)
    return done.stdout


def decoded_images(browser: str, html: Path, timeout: float) -> list[dict]:
    """[{alt, w, h}] of every image after load, from a probed copy of the page."""
    with tempfile.TemporaryDirectory() as tmp:
        probed = Path(tmp) / html.name
        probed.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        dom = run_browser(browser, ["--dump-dom", probed.as_uri()], timeout)
    found = re.search(r'data-images="([^"]*)"', dom)
    if not found:
        raise RuntimeError("the probe script did not run: the page did not load in Chromium")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot_is_blank(browser: str, html: Path, out: Path, timeout: float, size: str = "1200,3000") -> bool:
    """Take a screenshot and say whether it is (almost) a single colour."""
    run_browser(browser, [f"--screenshot={out}", f"--window-size={size}", html.as_uri()], timeout)
    if not out.is_file():
        return True
    stat = ImageStat.Stat(Image.open(out).convert("L"))
    return stat.stddev[0] < 2.0


def check_render(html: str | Path, screenshot: str | Path | None = None, browser: str | None = None,
                 timeout: float = 120) -> dict:
    """{images, broken (alts with naturalWidth 0), blank, screenshot, ok} for one HTML report."""
    html = Path(html).resolve()
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it (apt-get install chromium)")
    screenshot = Path(screenshot or tempfile.mkstemp(suffix=".png")[1]).resolve()
    images = decoded_images(browser, html, timeout)
    broken = [i["alt"] for i in images if i["w"] == 0 or i["h"] == 0]
    blank = screenshot_is_blank(browser, html, screenshot, timeout)
    return {"images": len(images), "broken": broken, "blank": blank, "screenshot": str(screenshot),
            "ok": bool(images) and not broken and not blank}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a report.html, or a run folder that holds one")
    parser.add_argument("--screenshot", help="where to save the screenshot (default: a temporary file)")
    args = parser.parse_args()
    html = Path(args.target) / "report.html" if Path(args.target).is_dir() else Path(args.target)
    result = check_render(html, args.screenshot)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
