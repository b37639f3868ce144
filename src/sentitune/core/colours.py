"""Word colours of explanations: white blended towards green (evidence for the explained class) or red (against).

Shared by the terminal and HTML explanations (`inference.explain`), the report (which colours stored explanations
without loading torch) and, mirrored, the served page (static/page.js).
"""

from __future__ import annotations

GREEN, RED, WHITE = (22, 163, 74), (220, 38, 38), (255, 255, 255)


def background(score: float) -> tuple[int, int, int]:
    """White blended towards green (score > 0) or red (< 0) by |score|."""
    colour = GREEN if score > 0 else RED
    weight = min(abs(score), 1.0)
    return tuple(round(w + (c - w) * weight) for w, c in zip(WHITE, colour))
