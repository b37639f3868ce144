"""`sentitune present RUN --video` (reporting/video.py).

A fake run is rendered as a short video (at most a minute, spoken fast) and checked from the outside: ffprobe reads
its duration, an H.264 1920x1080 yuv420p stream, an AAC stream and one chapter a slide titled as the slide; the
WebVTT captions tile each chapter exactly and hold that slide's first sentences; the audio is silent where a slide
opens and speaks where its first caption starts; a frame sampled at the middle of each chapter is its slide's
screenshot. The pure steps (shortening, cue cutting, escaping, the spoken form) are checked on their own, the main
job's narration is timed at the real speaking rate, and a missing tool is one line with its install command.
Tests that need Chromium, ffmpeg, espeak-ng or playwright skip, saying which, where one is missing.
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fake_run import fake_comparison, make_fake_run
from test_cli import sentitune

from sentitune.core.errors import SentituneError
from sentitune.evaluation.evaluate import evaluate_run
from sentitune.reporting import video
from sentitune.reporting.facts import run_facts
from sentitune.reporting.present import slides, write_presentation

ROOT = Path(__file__).resolve().parents[1]
MAX_MINUTES, FAST = 1.0, 400  # the test video: at most a minute, espeak-ng at 400 words a minute
CUE = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n(.*?)(?:\n\n|\Z)", re.S)
SAMPLE_RATE = 8000  # the audio is decoded at this rate to check where the speech is


def need_tools(*tools: str) -> None:
    """Skip, saying what to install, unless each tool (and for chromium the playwright package) is here."""
    for tool in tools:
        if tool == "chromium":
            pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                                              "(pip install 'sentitune[video]')")
            if video.chromium_path() is None:
                pytest.skip("Chromium is not installed (apt-get install chromium)")
        elif shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {'ffmpeg' if tool == 'ffprobe' else tool})")


def millis(parts: tuple[str, ...]) -> int:
    h, m, s, ms = map(int, parts)
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def read_cues(path: Path) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of each cue of a WebVTT file."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\n\n")
    return [(millis(m.groups()[:4]), millis(m.groups()[4:8]), html.unescape(" ".join(m.group(9).split())))
            for m in CUE.finditer(text)]


def frame_at(path: Path, at: float) -> np.ndarray:
    """The video's frame at `at` seconds, as RGB."""
    from PIL import Image

    png = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1",
                          "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True).stdout
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> SimpleNamespace:
    """A three-class fake run, evaluated and compared, its deck and its video (kept images, at most a minute)."""
    need_tools("chromium", "ffmpeg", "ffprobe", "espeak-ng")
    root = tmp_path_factory.mktemp("video")
    run = make_fake_run(root, kind="tweets")
    evaluate_run(run)
    fake_comparison(run)
    deck = write_presentation(run)
    made = video.write_video(run, deck, max_minutes=MAX_MINUTES, rate=FAST, images_dir=root / "images")
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters",
                                       "-of", "json", str(made.path)], capture_output=True, check=True).stdout)
    deck_slides = slides(run_facts(run), root)
    return SimpleNamespace(run=run, made=made, probe=probe, images=sorted((root / "images").glob("slide-*.png")),
                           titles=[s.title for s in deck_slides], said=[video.sentences(s) for s in deck_slides],
                           chapters=[(c["tags"]["title"], int(c["start"]), int(c["end"])) for c in probe["chapters"]])


def test_video_streams_duration_and_chapters(rendered):
    made, probe = rendered.made, rendered.probe
    assert made.path == rendered.run / "presentation.mp4" and made.captions == rendered.run / "presentation.vtt"
    assert not list(rendered.run.glob(".presentation.*tmp*"))  # written through a temporary file, renamed
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert sorted(s["codec_type"] for s in probe["streams"] if s["codec_type"] != "data") == ["audio", "video"]
    # besides them only data: MP4 keeps its chapters as a text track, which ffprobe lists as a data stream
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"],
            streams["video"]["pix_fmt"]) == ("h264", 1920, 1080, "yuv420p")
    assert streams["audio"]["codec_name"] == "aac"
    duration = float(probe["format"]["duration"])
    assert abs(duration - made.seconds) < 0.15 and 20 < duration <= MAX_MINUTES * 60 + 0.15
    assert made.sentences < made.available  # --max-minutes dropped sentences
    assert [title for title, _, _ in rendered.chapters] == rendered.titles and len(rendered.titles) == 10
    assert all(c["time_base"] == "1/1000" for c in probe["chapters"])
    assert rendered.chapters[0][1] == 0 and rendered.chapters[-1][2] == round(made.seconds * 1000)
    assert all(a[2] == b[1] for a, b in zip(rendered.chapters, rendered.chapters[1:]))  # back to back
    assert [(t, round(s * 1000), round(e * 1000)) for t, s, e in made.chapters] == rendered.chapters


def test_captions_tile_each_chapter_with_its_first_sentences(rendered):
    cues = read_cues(rendered.made.captions)
    assert len(cues) >= len(rendered.chapters)
    assert all(start < end for start, end, _ in cues) and all(a[1] == b[0] for a, b in zip(cues, cues[1:]))
    for (title, start, end), said in zip(rendered.chapters, rendered.said):
        inside = [c for c in cues if start <= c[0] < end]
        assert inside, title
        assert inside[0][0] == start and inside[-1][1] == end, title  # the slide's cues start and end with it
        spoken = " ".join(text for _, _, text in inside)
        kept = next((k for k in range(1, len(said) + 1) if " ".join(said[:k]) == spoken), None)
        assert kept is not None, (title, spoken)  # the slide's first sentences, in order, word for word
        assert all(len(text) <= video.CUE_CHARS for _, _, text in inside)


def test_speech_starts_where_each_slide_opens(rendered):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(rendered.made.path), "-f", "s16le", "-ac", "1",
                          "-ar", str(SAMPLE_RATE), "-"], capture_output=True, check=True).stdout
    audio = np.frombuffer(raw, np.int16).astype(float)

    def rms(t0: float, t1: float) -> float:
        window = audio[int(t0 * SAMPLE_RATE):int(t1 * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(window ** 2)))

    for title, start_ms, _ in rendered.chapters:
        start = start_ms / 1000
        assert rms(start + 0.1, start + video.LEAD - 0.15) < 50, title  # the pause before the slide's first sentence
        assert rms(start + video.LEAD + 0.05, start + video.LEAD + 0.6) > 500, title  # then speech


def test_frames_sampled_from_the_video_are_the_slides(rendered):
    from PIL import Image

    shots = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in rendered.images]
    assert len(shots) == len(rendered.chapters) and all(s.shape == (1080, 1920, 3) for s in shots)
    for number, (title, start, end) in enumerate(rendered.chapters):
        frame = frame_at(rendered.made.path, (start + end) / 2000)
        differences = [float(np.abs(frame - shot).mean()) for shot in shots]
        assert differences[number] < 2.0, (title, differences[number])  # H.264 of the same picture
        others = differences[:number] + differences[number + 1:]
        assert min(others) > 2 * differences[number], (title, differences)  # and not another slide


# ---------------------------------------------------------------- the steps on their own


def test_shorten_keeps_each_slides_first_sentences_within_the_time():
    durations = [[3.0, 2.0, 2.0, 2.0], [4.0, 1.0], [1.0], [2.0, 2.0, 2.0]]
    full = sum(video.slide_seconds(d) for d in durations)
    assert video.shorten(durations, None) == [4, 2, 1, 3] == video.shorten(durations, full)
    for limit in (full - 0.1, full - 3, full - 6, 20.0):
        kept = video.shorten(durations, limit)
        assert all(1 <= k <= len(d) for k, d in zip(kept, durations))
        assert sum(video.slide_seconds(d[:k]) for d, k in zip(durations, kept)) <= limit
        assert not any(k < len(d) and d[k] + video.GAP <= limit - sum(video.slide_seconds(e[:j]) for e, j in
                                                                       zip(durations, kept))
                       for k, d in zip(kept, durations))  # nothing more would fit
    least = sum(video.slide_seconds(d[:1]) for d in durations)
    assert video.shorten(durations, least) == [1, 1, 1, 1]
    with pytest.raises(SentituneError, match=r"--max-minutes 0\.25: too short; one sentence a slide alone takes"):
        video.shorten(durations, 15.0)


def test_cues_split_long_sentences_and_tile_the_slide():
    rate = 1000
    lines = [video.Line("A short one.", Path("a.wav"), 1500),
             video.Line("A much longer sentence that goes on, with a clause, and another clause, until it needs "
                        "three caption cues to be read comfortably at all.", Path("b.wav"), 6000)]
    parts = [video.Part("One", Path("1.png"), lines), video.Part("Two <b>&", Path("2.png"), lines[:1])]
    total = video.timeline(parts, rate)
    assert parts[0].start == 0 and parts[0].starts[0] == round(video.LEAD * rate) and parts[1].start == parts[0].end
    assert total == parts[1].end
    cues = video.cues(parts, rate)
    assert [c[0] for c in cues[1:]] == [c[1] for c in cues[:-1]] and cues[0][0] == 0 and cues[-1][1] == total
    long_cues = [c for c in cues if c[2] not in ("A short one.",)]
    assert len(long_cues) >= 2 and " ".join(c[2] for c in long_cues) == lines[1].text
    assert all(len(c[2]) <= video.CUE_CHARS for c in cues)
    vtt = video.webvtt(cues)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> ") and all(len(line) <= video.CUE_CHARS
                                                                   for line in vtt.splitlines())
    hostile = video.webvtt([(0, 1000, "a <b>bold</b> & --> x")])
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; --&gt; x" in hostile.replace("\n", " ")
    meta = video.chapters(parts, rate, "run=1; #x")
    assert meta.startswith(";FFMETADATA1\ntitle=run\\=1\\; \\#x\n") and meta.count("[CHAPTER]") == 2
    assert "title=Two <b>&" in meta and f"END={video.ms(total, rate)}" in meta


def test_spoken_form_is_for_the_voice_only():
    assert video.spoken("accuracy 0.875 vs -0.9 points; p < 0.0001") == (
        "accuracy point 8 7 5 vs minus point 9 points; p less than point 0 0 0 1")
    assert video.spoken("23.3 examples/s on Intel(R) Xeon(R), AVX2/AMX, took 3.6 min (tfidf-lr)") == (
        "23.3 examples per second on Intel Xeon, AVX2, AMX, took 3.6 minutes (T F I D F-lr)")
    slide = SimpleNamespace(notes=["One `code`. Two, with 0.5 and e.g. this. 3 more."], missing=["a piece"])
    assert video.sentences(slide) == ["One code.", "Two, with 0.5 and e.g. this.", "3 more.",
                                      "Not shown, missing from the run: a piece."]


def test_the_main_job_narration_is_about_15_minutes_at_150_words_a_minute(tmp_path):
    """Every slide speaks; the whole talk, spoken by espeak-ng at its default rate, lasts about 15 minutes; five
    minutes keeps each slide's first sentences."""
    need_tools("espeak-ng")
    deck = slides(run_facts(ROOT / "docs" / "runs" / "main-job-amx"), tmp_path)
    said = [video.sentences(s) for s in deck]
    assert all(said) and [s.key for s in deck][-1] == "reuse"
    lines, audio = video.speak([s for texts in said for s in texts], tmp_path / "speech")
    durations, at = [], 0
    for texts in said:
        durations.append([line.samples / audio[2] for line in lines[at:at + len(texts)]])
        at += len(texts)
    minutes = sum(video.slide_seconds(d) for d in durations) / 60
    assert 13.5 <= minutes <= 16.5, minutes
    assert abs(sum(s.minutes for s in deck) - 15) < 1e-9
    kept = video.shorten(durations, 5 * 60)
    assert all(k >= 1 for k in kept) and sum(kept) < len(lines)


# ---------------------------------------------------------------- missing tools


@pytest.fixture
def evaluated_run(tmp_path) -> Path:
    run = make_fake_run(tmp_path)
    evaluate_run(run)
    return run


@pytest.mark.parametrize("absent, line", [
    ({"ffmpeg"}, "sentitune present --video: needs ffmpeg; apt-get install ffmpeg"),
    ({"espeak-ng"}, "sentitune present --video: needs espeak-ng; apt-get install espeak-ng"),
    ({"chromium", "chromium-browser", "ffmpeg", "espeak-ng"},
     "sentitune present --video: needs chromium, ffmpeg and espeak-ng; apt-get install chromium ffmpeg espeak-ng"),
])
def test_a_missing_tool_is_one_line_and_the_deck_is_still_written(absent, line, evaluated_run, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name in absent else which(name, *a, **k))
    result = sentitune("present", str(evaluated_run), "--video")
    assert result.returncode == 2 and result.stderr.splitlines() == [f"error: {line}"], result.stderr
    assert (evaluated_run / "presentation.html").is_file() and not list(evaluated_run.glob("*presentation.mp4*"))


def test_missing_playwright_and_max_minutes_without_video_are_one_line(evaluated_run, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")
    monkeypatch.setitem(sys.modules, "playwright", None)
    result = sentitune("present", str(evaluated_run), "--video")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: sentitune present --video: needs playwright; pip install 'sentitune[video]'."]
    result = sentitune("present", str(evaluated_run), "--max-minutes", "5")
    assert result.returncode == 2 and result.stderr.splitlines() == ["error: --max-minutes: only with --video."]
