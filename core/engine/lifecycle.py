"""Which images depend on which, and removing images without ever orphaning a committed one.

Dependencies come from each complete image's clear summary (``parent``); the chain pins in the
authenticated body are checked whenever an image is opened, so a summary that lied could at worst
make us keep too much or delete what an attacker with write access could delete anyway.
Removal runs newest first (children before parents), manifest first: a kill at any moment leaves
every image that still has a manifest with all of its ancestors.
"""

from __future__ import annotations

from typing import Iterable

from .repo import ImageEntry, Repository


def ancestors(images: dict[str, ImageEntry], image_id: str) -> list[str]:
    """Parent, grandparent, ... of an image, by the summaries (stops at a missing link)."""
    out: list[str] = []
    seen = {image_id}
    cur = images.get(image_id)
    while cur is not None and cur.parent and cur.parent not in seen:
        out.append(cur.parent)
        seen.add(cur.parent)
        cur = images.get(cur.parent)
    return out


def closure(images: dict[str, ImageEntry], keep: Iterable[str]) -> set[str]:
    """The kept images plus everything they depend on."""
    out: set[str] = set()
    for image_id in keep:
        out.add(image_id)
        out.update(ancestors(images, image_id))
    return out


def remove_images(repo: Repository, images: list[ImageEntry], doomed: set[str]) -> list[str]:
    """Delete ``doomed`` images, children before parents; returns the ids in deletion order."""
    order = [i.id for i in sorted((i for i in images if i.id in doomed), key=lambda i: (i.time, i.id), reverse=True)]
    for image_id in order:
        repo.remove_image(image_id)
    return order
