"""The README and docs/*.md stay short, backed by artefacts, free of broken links, and in step with CI.

- README.md is at most 120 lines;
- every figure in README.md (integers of 2+ digits, decimals, percentages, ratios like 8.9x, p-values like 2.0e-8)
  appears in a committed artefact (a text file under docs/runs/, step logs aside) or in docs/results.md or
  docs/benchmarks.md;
- every relative link in README.md, docs/*.md and docs/runs/README.md points to an existing file;
- README.md has exactly two fenced set-up blocks, one running the main job and one the tests, and the test one is
  the command .ci/run runs.
"""
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUNS = DOCS / "runs"
# Step logs (*.jsonl) are left out: their thousands of long floats would "back" almost any figure.
TEXT_SUFFIXES = {".json", ".md", ".txt", ".yaml", ".yml", ".csv", ".tsv"}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
# A figure: not glued to a word, a dot or a dash on its left (so not part of a version, an id or a path), and not
# followed by a letter or a further dotted part (2.13.0, 10m, 25k are not figures), except a trailing % or x.
NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:,\d{3})*(?:\.\d+)?(?:e-\d+)?)(%|x(?![\w]))?(?![\w.]\d|[\w])")


def without_link_targets(text: str) -> str:
    """Markdown link targets are paths, checked by the link test; their digits are not figures."""
    return re.sub(r"\]\(([^)]*)\)", "]()", text)


def figures(text: str) -> list[str]:
    found = []
    for match in NUMBER.finditer(without_link_targets(text)):
        number, suffix = match.group(1), match.group(2)
        plain = number.replace(",", "")
        if suffix or "." in plain or "e-" in plain or len(plain) >= 2:
            found.append(number + (suffix or ""))
    return found


@lru_cache(maxsize=1)
def evidence() -> str:
    """The committed artefacts and the two figure pages, thousands separators removed."""
    files = [DOCS / "results.md", DOCS / "benchmarks.md"]
    files += [p for p in RUNS.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES]
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


def backed(figure: str) -> bool:
    """The figure as written, or a percentage as the fraction an artefact stores (87.50% <- 0.875, 0.87504; at most
    two digits more than the figure shows, so a long float in a file does not count)."""
    value = figure.rstrip("%x").replace(",", "")
    corpus = evidence()
    if re.search(rf"(?<![\d.]){re.escape(value)}(?!\d)", corpus):
        return True
    if figure.endswith("%") and "." in value:
        decimals = len(value.split(".")[1])
        fraction = f"{float(value) / 100:.{decimals + 2}f}".rstrip("0")
        return re.search(rf"(?<![\d.]){re.escape(fraction)}\d{{0,2}}(?!\d)", corpus) is not None
    return False


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_at_most_120_lines():
    assert len(readme().splitlines()) <= 120


def test_figures_finds_what_it_should():
    text = ("92.63% on 25,000 reviews, 8.85x, p = 2.0e-8, 5 min 40 s; not torch==2.13.0, 10m, 25k, MiniLM-L6-v2, "
            "[a](docs/runs/student-3-full-amx/metrics.json)")
    assert figures(text) == ["92.63%", "25,000", "8.85x", "2.0e-8", "40"]


def test_every_figure_in_the_readme_is_backed_by_an_artefact():
    unbacked = sorted({f for f in figures(readme()) if not backed(f)})
    assert not unbacked, f"figures in README.md found in no file under docs/runs/ nor docs/results.md, " \
                         f"docs/benchmarks.md: {unbacked}"


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md")), RUNS / "README.md"]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    broken = []
    for match in LINK.finditer(text):
        target = (match.group(1) or match.group(2)).split("#")[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):  # an anchor on the page, or a URL
            continue
        path = (page.parent / target).resolve()
        if not path.exists():
            broken.append(target)
        elif page != README and RUNS in path.parents and path.suffix == ".md" and path.name != "README.md":
            broken.append(f"{target} (run folders' .md files are not built into the site: link .html or .json)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def setup_blocks() -> list[str]:
    """The fenced blocks of README.md that set up a fresh machine: those that start with `pip install`."""
    return [block.strip() for block in FENCE.findall(readme()) if block.lstrip().startswith("pip install")]


def ci_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in lines if line.strip().startswith("pip install")]
    assert len(commands) == 1, f".ci/run should run one `pip install ...` command line, found {commands}"
    return commands[0]


def test_readme_has_two_setup_blocks_and_the_test_one_is_what_ci_runs():
    blocks = setup_blocks()
    assert len(blocks) == 2, f"README.md should have exactly two set-up blocks, found {len(blocks)}"
    assert all("\n" not in block for block in blocks), "each set-up block is one command line"
    main, tests = sorted(blocks, key=lambda block: "pytest" in block)
    assert "sentitune run" in main and "pytest" not in main
    assert shlex.split(tests) == shlex.split(ci_command()), "README's test command differs from .ci/run's"
    section = readme().split("## Set up a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert all(block in section for block in blocks), "both set-up blocks belong under 'Set up a fresh machine'"
