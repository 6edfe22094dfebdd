"""A large text read as overlapping pieces, so that scanning it takes bounded memory and
time linear in its length.

``bastion guard scan --file`` reads its file (or stdin) through :func:`text_pieces`:
UTF-8 is decoded incrementally (invalid bytes are refused, from a file or stdin alike),
and the text comes out as pieces of about ``piece_chars`` characters, cut at white space
where there is some, each piece also holding the next ``overlap_chars`` characters, so
that an attack shorter than the overlap that straddles a cut is whole in one piece.
Memory holds one piece at a time whatever the input's size.
"""

from __future__ import annotations

import codecs
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from bastion.errors import InputError
from bastion.guard.base import SEVERITY

if TYPE_CHECKING:
    from bastion.guard.pipeline import PipelineResult

#: (offset in characters, characters, the piece's result)
Piece = tuple[int, int, "PipelineResult"]

PIECE_CHARS = 20_000
OVERLAP_CHARS = 1_000
_READ_BYTES = 1 << 16


def _cut(text: str, size: int) -> int:
    """Where to end a piece of at most ``size`` characters: after the last white space in
    its second half, else at ``size`` (a text without spaces is cut anywhere)."""
    space = max(text.rfind(" ", size // 2, size), text.rfind("\n", size // 2, size))
    return space + 1 if space >= 0 else size


def text_pieces(stream: BinaryIO, name: str, piece_chars: int = PIECE_CHARS,
                overlap_chars: int = OVERLAP_CHARS) -> Iterator[tuple[int, str]]:
    """``(offset, text)`` pieces of the UTF-8 byte ``stream``; ``offset`` counts characters.

    Raises:
        InputError: the bytes are not UTF-8 (the message names ``name`` and the offset).
    """
    if piece_chars < 1 or overlap_chars < 0:
        raise InputError(f"piece_chars must be >= 1 and overlap_chars >= 0, got "
                         f"{piece_chars} and {overlap_chars}")
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    buf, offset, read = "", 0, 0
    yielded = False
    while True:
        data = stream.read(_READ_BYTES)
        try:
            buf += decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise InputError(f"{name} is not UTF-8 text (bad byte near offset "
                             f"{read + max(0, exc.start)}); convert it first (e.g. "
                             "iconv -t utf-8)") from None
        read += len(data)
        while len(buf) >= piece_chars + overlap_chars:
            cut = _cut(buf, piece_chars)
            yield offset, buf[:cut + overlap_chars]
            yielded = True
            buf, offset = buf[cut:], offset + cut
        if not data:
            break
    if buf or not yielded:
        yield offset, buf


def scan_pieces(stream: BinaryIO, name: str, scan_one: Callable[[str], PipelineResult],
                progress: Callable[[int], None] | None = None,
                every_s: float = 10.0) -> tuple[list[Piece], int]:
    """Scan ``stream`` a piece at a time with ``scan_one``; the pieces and the text's
    length in characters. Memory holds one piece at a time and the results, whose texts
    are dropped once there is more than one piece. ``progress`` gets
    the characters done every ``every_s`` seconds."""
    out: list[Piece] = []
    total, shown = 0, time.monotonic()
    for offset, piece in text_pieces(stream, name):
        if len(out) == 1:  # a second piece: keep results small from now on
            out[0] = (out[0][0], out[0][1], _lean(out[0][2]))
        result = scan_one(piece)
        out.append((offset, len(piece), _lean(result) if out else result))
        total = offset + len(piece)
        if progress is not None and time.monotonic() - shown > every_s:
            progress(total)
            shown = time.monotonic()
    return out, total


def _lean(result: PipelineResult) -> PipelineResult:
    """``result`` without the texts it holds (its own and each layer's sanitized text,
    the layers' spans): what a summary of many pieces needs, in constant size."""
    layers = [dataclasses.replace(x, sanitized="", spans=()) for x in result.layers]
    return dataclasses.replace(result, sanitized="", layers=layers)


def pieces_summary(pieces: list[Piece], total: int) -> dict[str, Any]:
    """The JSON of a text scanned in pieces: the most severe piece's verdict, the highest
    score, the text's length, the summed latency, and per piece its verdict and layers."""
    worst = max((r for _, _, r in pieces), key=lambda r: (SEVERITY[r.verdict], r.score))
    return {"verdict": worst.verdict, "score": max(r.score for _, _, r in pieces),
            "chars": total, "latency_ms": sum(r.latency_ms for _, _, r in pieces),
            "pieces": [{"offset": o, "chars": n, "verdict": r.verdict, "score": r.score,
                        "layers": [{"name": x.scanner, "verdict": x.verdict, "score": x.score,
                                    "reason": x.reason} for x in r.layers]}
                       for o, n, r in pieces]}
