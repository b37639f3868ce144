"""Open a sentitune slide deck (presentation.html) in headless Chromium and check every slide.

    python benchmarks/check_presentation_render.py runs/tweeteval                # RUN/presentation.html
    python benchmarks/check_presentation_render.py deck.html --screenshots docs/images/presentation

Per slide: no element lies outside the 1280x720 slide and nothing is scrolled away, every image decodes, the type
was not shrunk (the deck shrinks a slide's type when its content would not fit: `fit` < 1), and it has speaker
notes. Then the keys: ArrowRight, space, PageDown move on, PageUp and ArrowLeft move back, `s` shows the notes.
And printing to PDF gives one page per slide. `--screenshots PREFIX` also saves PREFIX-<n>.png per slide.
Exits 1 on failure. Uses the Chromium that check_report_render.py finds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_report_render import find_chromium, run_browser

WIDTH, HEIGHT = 1280, 720
# Measures every slide (made visible in turn), then presses keys, and leaves the findings on <html data-deck>.
PROBE = """<script>
window.addEventListener("load", () => {
  const slides = Array.from(document.querySelectorAll(".slide"));
  const report = {slides: [], keys: []};
  slides.forEach((slide, i) => {
    slide.classList.add("measuring");
    const box = slide.getBoundingClientRect();
    const outside = [];
    slide.querySelectorAll("*").forEach(el => {
      const r = el.getBoundingClientRect();
      if (el.closest(".notes") || (r.width === 0 && r.height === 0)) return;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        outside.push(el.tagName.toLowerCase() + (el.className ? "." + el.className : ""));
    });
    report.slides.push({index: i + 1, key: slide.dataset.key, fit: parseFloat(slide.dataset.fit || "0"),
      scrolled: Array.from(slide.querySelectorAll(".body, .col, .row")).some(
        b => b.scrollHeight > b.clientHeight + 1 || b.scrollWidth > b.clientWidth + 1),
      outside: outside.slice(0, 5), notes: slide.querySelector(".notes").textContent.trim().length,
      images: Array.from(slide.querySelectorAll("img")).map(im => im.naturalWidth > 0 && im.naturalHeight > 0)});
    slide.classList.remove("measuring");
  });
  const active = () => slides.findIndex(s => s.classList.contains("active")) + 1;
  const press = (key, shift) => document.dispatchEvent(new KeyboardEvent("keydown", {key: key, shiftKey: !!shift}));
  [["Home"], ["ArrowRight"], [" "], ["PageDown"], ["PageUp"], ["ArrowLeft"], [" ", true], ["End"]].forEach(k => {
    press(k[0], k[1]);
    report.keys.push([k[0] + (k[1] ? "+shift" : ""), active()]);
  });
  press("s");
  const panel = document.getElementById("notes-panel");
  report.notes_shown = document.body.classList.contains("show-notes") && panel.offsetHeight > 0
    && panel.textContent.trim().length > 0;
  document.documentElement.setAttribute("data-deck", JSON.stringify(report));
});
</script>"""


def with_probe(html: Path, folder: Path) -> Path:
    """A copy of the deck with the probe script before its last </body>."""
    text = html.read_text(encoding="utf-8")
    at = text.rindex("</body>")
    probed = folder / html.name
    probed.write_text(text[:at] + PROBE + text[at:], encoding="utf-8")
    return probed


def probe_deck(browser: str, html: Path, timeout: float = 120) -> dict:
    """{slides: [{index, key, fit, scrolled, outside, notes, images}], keys: [[key, active slide]], notes_shown}."""
    with tempfile.TemporaryDirectory() as tmp:
        dom = run_browser(browser, [f"--window-size={WIDTH},{HEIGHT}", "--dump-dom",
                                    with_probe(html, Path(tmp)).as_uri()], timeout)
    found = re.search(r'data-deck="([^"]*)"', dom)
    if not found:
        raise RuntimeError("the probe script did not run: the deck did not load in Chromium")
    text = found.group(1)
    for entity, char in (("&quot;", '"'), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return json.loads(text)


def pdf_pages(browser: str, html: Path, timeout: float = 120) -> int:
    """How many pages printing the deck gives."""
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "deck.pdf"
        run_browser(browser, ["--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri()], timeout)
        data = pdf.read_bytes() if pdf.is_file() else b""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def screenshots(browser: str, html: Path, prefix: Path, count: int, timeout: float = 120) -> list[Path]:
    """PREFIX-<n>.png of each slide at 1280x720."""
    paths = []
    for n in range(1, count + 1):
        path = Path(f"{prefix}-{n}.png").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        run_browser(browser, [f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={path}", f"{html.as_uri()}#{n}"],
                    timeout)
        paths.append(path)
    return paths


def problems(report: dict, pages: int | None, min_fit: float = 1.0) -> list[str]:
    """Every failed check, as one line each."""
    out = []
    for s in report["slides"]:
        where = f"slide {s['index']} ({s['key']})"
        out += [f"{where}: content outside the slide: {s['outside']}"] if s["outside"] else []
        out += [f"{where}: content scrolled out of view"] if s["scrolled"] else []
        out += [f"{where}: type shrunk to {s['fit']}"] if s["fit"] < min_fit else []
        out += [f"{where}: no speaker notes"] if not s["notes"] else []
        out += [f"{where}: an image did not decode"] if not all(s["images"]) else []
    n = len(report["slides"])
    expected = [1, 2, 3, 4, 3, 2, 1, n]  # Home, ArrowRight, space, PageDown, PageUp, ArrowLeft, shift+space, End
    moved = [active for _, active in report["keys"]]
    out += [f"keys: expected slides {expected}, got {moved}"] if n >= 4 and moved != expected else []
    out += ["keys: `s` did not show the speaker notes"] if not report["notes_shown"] else []
    out += [f"print: {pages} pages for {n} slides"] if pages is not None and pages != n else []
    return out


def check_deck(html: str | Path, browser: str | None = None, pdf: bool = True, min_fit: float = 1.0) -> dict:
    """{slides, keys, notes_shown, pages, problems, ok} for one deck."""
    html = Path(html).resolve()
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found; install it (apt-get install chromium)")
    report = probe_deck(browser, html)
    pages = pdf_pages(browser, html) if pdf else None
    found = problems(report, pages, min_fit)
    return {**report, "pages": pages, "problems": found, "ok": not found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a presentation.html, or a run folder that holds one")
    parser.add_argument("--screenshots", help="save PREFIX-<n>.png of every slide")
    args = parser.parse_args()
    html = Path(args.target) / "presentation.html" if Path(args.target).is_dir() else Path(args.target)
    result = check_deck(html)
    if args.screenshots:
        result["screenshots"] = [str(p) for p in screenshots(find_chromium(), html.resolve(), Path(args.screenshots),
                                                             len(result["slides"]))]
    print(json.dumps({k: result[k] for k in ("problems", "pages", "ok", "keys", "notes_shown")}, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
