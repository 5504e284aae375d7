"""What the broker's check of an uploaded recording segment costs, against decoding it.

Makes one-second segments the way the host does (:class:`~host_client.recorder.SegmentWriter`,
VP8 at 2 fps) from three kinds of picture, each 1920x1080 and 3840x2160: a still
screen, a page of text with a window moving over it, and noise (the worst case for
the encoder, and the largest segments). For each it times
:func:`broker.audit.segment_check.check_segment` (demux and VP8 frame headers: what the
broker does before it stores a segment) and, for comparison, decoding every frame
(what a check by decoding would cost). No display, no broker.

Run: ``.venv/bin/python -m bench.segment_check [--rounds 30] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import av
import numpy as np

from bench.report import machine_conditions, publish
from broker.audit.segment_check import check_segment
from host_client.recorder import SegmentWriter
from protocol.cli import number_in_range

FPS = 2.0
SIZES = ((1920, 1080), (3840, 2160))


def pictures(kind: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Two BGRA frames of ``kind``: still, text, noise."""
    if kind == "noise":
        rng = np.random.default_rng(15)
        first, second = (rng.integers(0, 255, (height, width, 4), dtype=np.uint8) for _ in range(2))
        return first, second
    first = np.full((height, width, 4), 255, np.uint8)
    if kind == "text":
        for y in range(0, height, 18):
            first[y:y + 9, 40:width - 40:4] = 20  # lines of "letters"
    second = first.copy()
    if kind == "text":
        second[200:600, 300:900] = (200, 120, 40, 255)  # a window moved over it
    return first, second


def segment(kind: str, width: int, height: int) -> bytes:
    first, second = pictures(kind, width, height)
    writer = SegmentWriter(FPS, first, None)
    writer.add(first, 0)
    writer.add(second, 500)
    return writer.finish()


def decode_all(data: bytes) -> None:
    with av.open(io.BytesIO(data)) as container:
        for _frame in container.decode(video=0):
            pass


def per_call_ms(work: Callable[[], object], rounds: int) -> float:
    work()  # warm up (codec set-up, caches)
    started = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - started) / rounds * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=number_in_range(int, 1, 10_000, "rounds"), default=30,
                        help="timed calls of each kind (default 30)")
    parser.add_argument("--write-docs", action="store_true", help="replace this section's figures in docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows = ["| picture | size | segment | check (demux + VP8 headers) | decoding every frame |", "|---|---|---|---|---|"]
    for width, height in SIZES:
        for kind in ("still", "text", "noise"):
            data = segment(kind, width, height)
            check = per_call_ms(lambda data=data: check_segment(data, 1000), args.rounds)
            decode = per_call_ms(lambda data=data: decode_all(data), max(1, args.rounds // 3))
            rows.append(f"| {kind} | {width}x{height} | {len(data) / 1000:.0f} kB | {check:.2f} ms | {decode:.1f} ms |")
    conditions = [*machine_conditions(), f"segments: 1 s at {FPS:g} fps (2 frames), VP8 as the host records them"]
    publish("segment_check", conditions, "\n".join(rows), write=args.write_docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
