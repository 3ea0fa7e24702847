"""The chain's resolution (`core.engine.overlay`) against a byte-by-byte model.

Random stacks of sorted, non-overlapping layers (data entries and holes) over a small disk: laying
them over each other with the streaming merge must give, byte for byte, what painting them from the
bottom up gives; the same for unit rows, where the upper layer wins on the same unit.
"""

from __future__ import annotations

import random
from typing import Iterator

import pytest

from core.engine.overlay import Entry, overlay, overlay_units
from core.format.c_image import HOLE_REF, UnitEntry

SIZE = 3000


def random_layer(rng: random.Random, ref: int) -> list[Entry]:
    out: list[Entry] = []
    pos = rng.randrange(0, 40)
    while pos < SIZE:
        n = rng.randrange(1, 200)
        if rng.random() < 0.6:
            kind = HOLE_REF if rng.random() < 0.3 else ref
            out.append((pos, min(n, SIZE - pos), kind, rng.randrange(5), rng.randrange(1000)))
        pos += n + rng.choice([0, 0, rng.randrange(1, 100)])  # touching entries, and gaps
    return out


def paint(layers: list[list[Entry]]) -> list[tuple[int, int, int] | None]:
    """Per byte: (ref, chunk, byte in chunk) of the topmost layer covering it, None for a hole/none."""
    state: list[tuple[int, int, int] | None] = [None] * SIZE
    for layer in reversed(layers):
        for off, n, ref, chunk, coff in layer:
            for i in range(n):
                state[off + i] = None if ref == HOLE_REF else (ref, chunk, coff + i)
    return state


def expand(entries: Iterator[Entry]) -> list[tuple[int, int, int] | None]:
    state: list[tuple[int, int, int] | None] = [None] * SIZE
    last_end = -1
    for off, n, ref, chunk, coff in entries:
        assert n > 0 and off >= last_end, "sorted and free of overlaps"
        last_end = off + n
        for i in range(n):
            state[off + i] = None if ref == HOLE_REF else (ref, chunk, coff + i)
    return state


@pytest.mark.parametrize("seed", range(40))
def test_streaming_overlay_paints_like_the_model(seed: int) -> None:
    rng = random.Random(seed)
    layers = [random_layer(rng, ref) for ref in range(rng.randrange(1, 6))]
    stream = iter(layers[-1])
    for ref in range(len(layers) - 2, -1, -1):
        stream = overlay(iter(layers[ref]), stream)
    assert expand(stream) == paint(layers)


def rows(units: dict[int, bytes]) -> bytes:
    return b"".join(UnitEntry.codec.pack(u, h) for u, h in sorted(units.items()))


@pytest.mark.parametrize("seed", range(40))
def test_unit_overlay_takes_the_upper_row(seed: int) -> None:
    rng = random.Random(seed)
    n_layers = rng.randrange(1, 5)
    layers = [{u: bytes([ref + 1]) * 16 for u in rng.sample(range(500), rng.randrange(0, 200))}
              for ref in range(n_layers)]
    expected: dict[int, bytes] = {}
    for layer in reversed(layers):
        expected.update(layer)

    def blocks(layer: dict[int, bytes]) -> Iterator[bytes]:
        data = rows(layer)
        step = rng.randrange(1, 50) * UnitEntry.size
        return iter([data[i:i + step] for i in range(0, len(data), step)])

    stream = blocks(layers[-1])
    for ref in range(n_layers - 2, -1, -1):
        stream = overlay_units(blocks(layers[ref]), stream)
    assert b"".join(stream) == rows(expected)
