"""The walkthrough as a video: `sentitune present RUN --video` turns the run's slide deck into `presentation.mp4`.

One function a step: `screenshots` renders each slide of the deck (`present.py`) to a 1920x1080 PNG in headless
Chromium (Playwright driving the system's Chromium); `speak` says each sentence of the slide's speaker notes with
espeak-ng, one WAV a sentence; `shorten` fits the talk into `max_minutes`; `timeline` places the slides and sentences
on one clock; `webvtt` writes the captions and `chapters` the ffmpeg metadata (one [CHAPTER] a slide, titled with the
slide's title); `mux` has ffmpeg join images, speech and chapters into an MP4 (H.264 yuv420p and AAC, 1920x1080).
Beside it, `presentation.vtt` holds the same sentences as captions.

The voice is espeak-ng's (Debian's espeak-ng package), the best text-to-speech engine that installs and runs offline
here: neural voices such as piper-tts sound far more natural, but piper needs its voice files from the Hugging Face
Hub, which this machine cannot reach. espeak-ng is formant synthesis: robotic but clear, and nothing beyond its
package. Its speech is normalised for listening only (`spoken`: "0.875" is said "point 8 7 5", "<" "less than",
"examples/s" "examples per second"); the captions keep the notes' own text.

Timing is exact: each sentence is its own WAV, so its length is known in samples. A slide opens with LEAD seconds of
silence, its sentences follow one another GAP seconds apart, and it closes with TAIL seconds; its image is shown for
exactly that long. The caption cues tile each slide: the first starts with the slide, each next one where its sentence
starts, the last ends with the slide, so chapters and cues agree to the millisecond. A long sentence is cut into
cues of at most CUE_CHARS characters, timed by their share of its characters.

Shortening (`max_minutes`, the CLI's --max-minutes) drops lower-priority sentences: each slide's notes go from its
essentials to its details, so a slide keeps the first of its sentences. Every slide gets a share of the time in
proportion to its full narration and keeps the longest run of first sentences that fits its share (at least one);
then the time left over goes to the next sentences, one a slide in turn. When even one sentence a slide does not fit,
that is an error that says the shortest possible talk.

Missing tools (Chromium, ffmpeg, espeak-ng, the playwright package) are one line with the install command. The video
is written to a temporary file and renamed (`core.io.atomic_file`): no half-written MP4 is ever left.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SentituneError
from ..core.extras import require
from ..core.io import atomic_file, atomic_write_text
from .facts import run_facts
from .present import Slide, slides

WHAT = "sentitune present --video"
WIDTH, HEIGHT, SCALE = 1280, 720, 1.5  # the deck's slide, rendered at 1.5 device pixels a pixel: 1920x1080
BROWSERS = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PACKAGES = {"chromium": "chromium", "ffmpeg": "ffmpeg", "espeak-ng": "espeak-ng"}  # tool -> its Debian package
VOICE, RATE = "en-us", 150  # espeak-ng's voice and speed in words a minute: a natural speaking rate
LEAD, GAP, TAIL, EMPTY = 0.6, 0.35, 1.0, 3.0  # seconds: before, between and after a slide's sentences; a silent slide
CUE_CHARS, LINE_CHARS = 84, 42  # a caption cue: at most 84 characters, on two lines when over 42
FPS, GOP_SECONDS = 10, 10  # still slides: 10 frames a second, a keyframe every 10 s and at every slide
PRESET, THREADS, AUDIO_RATE, AUDIO_BITRATE = "veryfast", 2, 44100, "96k"
SENTENCE_END = re.compile(r'(?<=[.!?…"])\s+(?=["A-Z0-9])')
SAY = (  # (pattern, replacement) for the voice only
    (r"\((?:R|TM)\)", ""),
    (r"\b(?:tfidf|TF-IDF)\b", "T F I D F"),
    (r"(?<=\w)/s\b", " per second"),
    (r"(?<=[A-Za-z0-9])/(?=[A-Za-z])", ", "),
    (r"<=\s*", "at most "), (r">=\s*", "at least "), (r"<\s*", "less than "), (r">\s*", "more than "),
    (r"(?<![\w.])-(?=\.?\d)", "minus "), (r"(?<![\w.])\+(?=\.?\d)", "plus "),
    (r"\b0\.(\d+)", lambda m: "point " + " ".join(m.group(1))),
    (r"(?<=\d) min\b", " minutes"), (r"(?<=\d) s\b", " seconds"),
    (r"[→…×≈`]", " "),
)


@dataclass
class Line:
    """One spoken sentence: its caption text, its WAV and its length in samples."""

    text: str
    wav: Path
    samples: int


@dataclass
class Part:
    """One slide of the video: its title, its image and the sentences kept; where it and each sentence start, in
    samples (set by `timeline`)."""

    title: str
    image: Path
    lines: list[Line]
    start: int = 0
    end: int = 0
    starts: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Video:
    path: Path
    captions: Path
    seconds: float
    chapters: list[tuple[str, float, float]]  # (title, start s, end s) a slide
    sentences: int  # spoken, of `available`
    available: int
    render_s: float


# ---------------------------------------------------------------- tools


def chromium_path() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def require_tools() -> str:
    """The Chromium to drive; one line naming the apt-get command when Chromium, ffmpeg or espeak-ng is missing (the
    pip command when the playwright package is)."""
    found = {"chromium": chromium_path(), "ffmpeg": shutil.which("ffmpeg"), "espeak-ng": shutil.which("espeak-ng")}
    absent = [tool for tool, path in found.items() if path is None]
    if absent:
        names = " and ".join([", ".join(absent[:-1]), absent[-1]] if len(absent) > 1 else absent)
        raise SentituneError(f"{WHAT}: needs {names}; apt-get install {' '.join(PACKAGES[t] for t in absent)}")
    require("video", what=WHAT)
    return found["chromium"]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a tool; its failure is one line with the end of what it said."""
    done = subprocess.run(command, capture_output=True, **kwargs)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines() if isinstance(done.stderr, bytes) else []
        raise SentituneError(f"{WHAT}: {command[0]} failed ({said[-1] if said else f'exit {done.returncode}'})")
    return done


# ---------------------------------------------------------------- screenshots


def screenshots(deck: Path, folder: Path, count: int, chromium: str) -> list[Path]:
    """folder/slide-NN.png: each of the deck's `count` slides at 1920x1080, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=SCALE)
            page.goto(Path(deck).resolve().as_uri(), wait_until="load")
            page.add_style_tag(content=".keys-help { display: none !important; }")  # no keys to press in a video
            page.evaluate("document.fonts.ready.then(() => true)")
            found = page.locator(".slide").count()
            if found != count:
                raise SentituneError(f"{deck}: {found} slides where the run has {count}; write the deck again "
                                     "(sentitune present).")
            for number in range(1, count + 1):
                page.evaluate("n => { window.location.hash = '#' + n; }", number)
                page.wait_for_function("n => document.querySelectorAll('.slide')[n - 1].classList.contains('active')",
                                       arg=number)
                paths.append(folder / f"slide-{number:02d}.png")
                page.screenshot(path=str(paths[-1]))
        finally:
            browser.close()
    return paths


# ---------------------------------------------------------------- speech


def sentences(slide: Slide) -> list[str]:
    """A slide's narration, sentence by sentence: its notes, then what the run lacks for it."""
    texts = [*slide.notes, *([f"Not shown, missing from the run: {'; '.join(slide.missing)}."] if slide.missing
                             else [])]
    return [s for text in texts for s in SENTENCE_END.split(" ".join(text.replace("`", "").split())) if s]


def spoken(text: str) -> str:
    """`text` as the voice should say it (the captions keep `text`)."""
    for pattern, replacement in SAY:
        text = re.sub(pattern, replacement, text)
    return " ".join(text.split())


def wav_samples(path: Path) -> tuple[int, tuple]:
    """(frames, (channels, sample width, rate)) of a WAV file."""
    with wave.open(str(path), "rb") as f:
        return f.getnframes(), (f.getnchannels(), f.getsampwidth(), f.getframerate())


def speak(texts: list[str], folder: Path, rate: int = RATE, voice: str = VOICE) -> tuple[list[Line], tuple]:
    """One WAV a sentence, folder/line-NNNN.wav, spoken by espeak-ng; the lines and their common audio format."""
    folder.mkdir(parents=True, exist_ok=True)
    lines, formats = [], set()
    for number, text in enumerate(texts):
        wav = folder / f"line-{number:04d}.wav"
        run(["espeak-ng", "-b", "1", "-v", voice, "-s", str(rate), "-w", str(wav), "--stdin"],
            input=spoken(text).encode())
        samples, audio = wav_samples(wav)
        lines.append(Line(text, wav, samples))
        formats.add(audio)
    if len(formats) > 1:
        raise SentituneError(f"{WHAT}: espeak-ng wrote WAVs in several formats ({sorted(formats)})")
    return lines, formats.pop() if formats else (1, 2, 22050)


# ---------------------------------------------------------------- timing


def slide_seconds(durations: list[float]) -> float:
    """How long a slide with sentences of these durations lasts."""
    return LEAD + sum(durations) + GAP * (len(durations) - 1) + TAIL if durations else EMPTY


def shorten(durations: list[list[float]], seconds: float | None) -> list[int]:
    """How many of its first sentences each slide keeps so that the talk lasts at most `seconds` (None: all)."""
    full = [slide_seconds(d) for d in durations]
    if seconds is None or sum(full) <= seconds:
        return [len(d) for d in durations]
    kept = [min(1, len(d)) for d in durations]
    least = sum(slide_seconds(d[:k]) for d, k in zip(durations, kept))
    if least > seconds:
        raise SentituneError(f"{WHAT} --max-minutes {seconds / 60:g}: too short; one sentence a slide alone takes "
                             f"{least / 60:.1f} minutes at this speech rate.")
    for i, d in enumerate(durations):
        share = seconds * full[i] / sum(full)
        while kept[i] < len(d) and slide_seconds(d[:kept[i] + 1]) <= share:
            kept[i] += 1
    left = seconds - sum(slide_seconds(d[:k]) for d, k in zip(durations, kept))
    grown = True
    while grown:
        grown = False
        for i, d in enumerate(durations):
            if kept[i] < len(d) and d[kept[i]] + GAP <= left:
                left -= d[kept[i]] + GAP
                kept[i] += 1
                grown = True
    return kept


def timeline(parts: list[Part], rate: int) -> int:
    """Place every slide and sentence on one clock (in samples at `rate`); the talk's length."""
    lead, gap, tail, empty = (round(s * rate) for s in (LEAD, GAP, TAIL, EMPTY))
    at = 0
    for part in parts:
        part.start, part.starts = at, []
        at += lead if part.lines else empty
        for k, line in enumerate(part.lines):
            part.starts.append(at)
            at += line.samples + (gap if k < len(part.lines) - 1 else tail)
        part.end = at
    return at


def ms(samples: int, rate: int) -> int:
    """Samples as whole milliseconds: chapters and captions both round through here, so they agree."""
    return round(samples * 1000 / rate)


def write_audio(parts: list[Part], path: Path, audio: tuple) -> None:
    """The whole talk as one WAV: each slide's silences and sentences where `timeline` put them."""
    channels, width, rate = audio
    frame = channels * width
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        for part in parts:
            at = part.start
            for line, start in zip(part.lines, part.starts):
                out.writeframes(b"\0" * (start - at) * frame)
                with wave.open(str(line.wav), "rb") as said:
                    out.writeframes(said.readframes(line.samples))
                at = start + line.samples
            out.writeframes(b"\0" * (part.end - at) * frame)


# ---------------------------------------------------------------- captions and chapters


def cue_texts(text: str, limit: int = CUE_CHARS) -> list[str]:
    """`text` cut at spaces into pieces of at most `limit` characters, about equal in length, preferably where a
    clause ends (a word longer than `limit` stays whole)."""
    words, out, current = text.split(), [], ""

    def even(rest: int) -> int:  # the length of equal pieces of what is left, as few pieces as fit
        return -(-rest // max(1, -(-rest // limit)))

    target = even(len(text))
    for i, word in enumerate(words):
        rest = len(" ".join(words[i:]))
        early = current[-1:] in (",", ";", ":") and len(current) >= 0.6 * target and rest >= 0.3 * target
        if current and (len(current) + 1 + len(word) > min(limit, target + 8) or early):
            out.append(current)
            current, target = word, even(rest)
        else:
            current = f"{current} {word}" if current else word
    return [*out, current] if current else out


def cues(parts: list[Part], rate: int) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every caption cue. The cues of a slide tile it: a sentence's cues run from where it
    starts (the first from the slide's start) to where the next one starts (the last to the slide's end)."""
    out = []
    for part in parts:
        bounds = [part.start, *part.starts[1:], part.end]
        for k, line in enumerate(part.lines):
            lo, hi = bounds[k], bounds[k + 1]
            pieces = cue_texts(line.text)
            total, done = sum(len(p) for p in pieces), 0
            for piece in pieces:
                start = lo + (hi - lo) * done // total
                done += len(piece)
                out.append((ms(start, rate), ms(lo + (hi - lo) * done // total, rate), piece))
    return out


def two_lines(text: str) -> list[str]:
    """A cue's text on one line, or on two cut at the space nearest its middle."""
    spaces = [i for i, char in enumerate(text) if char == " "]
    if len(text) <= LINE_CHARS or not spaces:
        return [text]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [text[:cut], text[cut + 1:]]


def stamp(millis: int) -> str:
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def webvtt(cue_list: list[tuple[int, int, str]]) -> str:
    """A WebVTT file of the cues, each on at most two lines; text escaped (&, <, >)."""
    blocks = ["WEBVTT\n"]
    for number, (start, end, text) in enumerate(cue_list, 1):
        lines = [line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in two_lines(text)]
        blocks.append(f"{number}\n{stamp(start)} --> {stamp(end)}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def metadata_value(text: str) -> str:
    """A value for an ffmpeg metadata file: '=', ';', '#', '\\' and line ends escaped with a backslash."""
    return re.sub(r"([=;#\\\n])", r"\\\1", " ".join(str(text).split()))


def chapters(parts: list[Part], rate: int, title: str) -> str:
    """The ffmpeg metadata file: the video's title and one [CHAPTER] a slide, titled with the slide's title."""
    lines = [";FFMETADATA1", f"title={metadata_value(title)}", ""]
    for part in parts:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={ms(part.start, rate)}", f"END={ms(part.end, rate)}",
                  f"title={metadata_value(part.title)}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- the video


def quoted(path: Path) -> str:
    """A path quoted for ffmpeg's concat list."""
    return "'" + str(Path(path).resolve()).replace("'", "'\\''") + "'"


def concat_list(parts: list[Part], rate: int) -> str:
    """ffmpeg's concat list of the slide images, each shown for its slide's length (the last named twice, as the
    concat demuxer needs for its duration to count)."""
    lines = ["ffconcat version 1.0"]
    for part in parts:
        lines += [f"file {quoted(part.image)}", f"duration {(ms(part.end, rate) - ms(part.start, rate)) / 1000:.3f}"]
    return "\n".join([*lines, f"file {quoted(parts[-1].image)}", ""])


def mux(images: Path, audio: Path, metadata: Path, keyframes: list[float], seconds: float, out: Path) -> None:
    """Join the slide images (a concat list), the talk's WAV and the chapters into an MP4 at `out`: H.264 yuv420p at
    1920x1080 (a keyframe at every slide), AAC audio."""
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "concat", "-safe", "0", "-i", str(images), "-i", str(audio), "-i", str(metadata),
         "-map", "0:v", "-map", "1:a", "-map_metadata", "2", "-map_chapters", "2",
         "-vf", f"fps={FPS},scale={round(WIDTH * SCALE)}:{round(HEIGHT * SCALE)},format=yuv420p",
         "-c:v", "libx264", "-preset", PRESET, "-tune", "stillimage", "-pix_fmt", "yuv420p",
         "-g", str(FPS * GOP_SECONDS), "-force_key_frames", ",".join(f"{k:.3f}" for k in keyframes),
         "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE),
         "-threads", str(THREADS), "-t", f"{seconds:.3f}", "-movflags", "+faststart", "-f", "mp4", str(out)])


def write_video(run_dir: str | Path, deck: str | Path, output: str | Path | None = None,
                max_minutes: float | None = None, rate: int = RATE, voice: str = VOICE,
                images_dir: str | Path | None = None) -> Video:
    """Render the run's deck (already written, at `deck`) as a narrated video: `output` (default: the deck's path as
    .mp4) and its captions beside it (.vtt). `max_minutes` shortens the talk; `rate` is espeak-ng's words a minute;
    `images_dir` keeps the slide images (default: a scratch folder)."""
    chromium = require_tools()
    started = time.monotonic()
    deck = Path(deck)
    path = Path(output) if output else deck.with_suffix(".mp4")
    captions = path.with_suffix(".vtt")
    facts = run_facts(run_dir)
    with tempfile.TemporaryDirectory(prefix="sentitune-video-") as scratch:
        work = Path(scratch)
        (work / "figures").mkdir()
        deck_slides = slides(facts, work / "figures")
        images = screenshots(deck, Path(images_dir) if images_dir else work / "images", len(deck_slides), chromium)
        said = [sentences(slide) for slide in deck_slides]
        lines, audio = speak([s for texts in said for s in texts], work / "speech", rate, voice)
        by_slide, at = [], 0
        for texts in said:
            by_slide.append(lines[at:at + len(texts)])
            at += len(texts)
        sample_rate = audio[2]
        kept = shorten([[line.samples / sample_rate for line in group] for group in by_slide],
                       max_minutes * 60 if max_minutes else None)
        parts = [Part(slide.title, image, group[:k]) for slide, image, group, k in zip(deck_slides, images, by_slide,
                                                                                      kept)]
        total = timeline(parts, sample_rate)
        write_audio(parts, work / "talk.wav", audio)
        (work / "chapters.txt").write_text(chapters(parts, sample_rate, f"{facts['name']}: walkthrough"),
                                           encoding="utf-8")
        (work / "slides.txt").write_text(concat_list(parts, sample_rate), encoding="utf-8")
        with atomic_file(path) as partial:
            mux(work / "slides.txt", work / "talk.wav", work / "chapters.txt",
                [ms(p.start, sample_rate) / 1000 for p in parts], ms(total, sample_rate) / 1000, partial)
        atomic_write_text(captions, webvtt(cues(parts, sample_rate)))
    return Video(path, captions, ms(total, sample_rate) / 1000,
                 [(p.title, ms(p.start, sample_rate) / 1000, ms(p.end, sample_rate) / 1000) for p in parts],
                 sum(kept), len(lines), time.monotonic() - started)
