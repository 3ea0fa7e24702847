"""Typed JSON records: dataclasses read from JSON objects (every value checked) and written back.

A record's fields are declared once, in its dataclass, each with a `Check` in its metadata (`spec`):
what JSON value is accepted and how it becomes the typed attribute. Classes declared elsewhere
(partition-table model objects, volume infos) get their checks with `declare`. `parse` builds a
record from a JSON object (absent keys take the declared default, unknown keys are ignored or kept
in an ``extra`` field), `dump` gives back exactly the JSON it was parsed from. A failed check
raises `Malformed` naming the field's path; the format's reader turns it into its own error.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_REQUIRED = object()


class Malformed(Exception):
    """A JSON value failed its check; ``path`` names it (``table.partitions[2].start``)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class Check:
    """How one JSON value is checked and converted; ``kind`` is its type as FORMAT.md names it."""

    kind: str
    parse: Callable[[Any, str], Any]
    record: type | None = None  # a nested record (or list of records): its fields are listed too


@dataclass(frozen=True)
class Field:
    attr: str
    key: str
    check: Check
    default: Any = _REQUIRED
    omit_none: bool = False  # absent from the JSON when None (keys that only some writers set)
    flat: bool = False  # a nested record whose keys sit in this object itself
    extra: bool = False  # collects the unknown keys, written back as they were


def spec(check: Check | None = None, *, key: str | None = None, default: Any = _REQUIRED,
         omit_none: bool = False, flat: bool = False, extra: bool = False) -> dict[str, Any]:
    """Dataclass field metadata: ``x: int = field(metadata=spec(uint()))``."""
    return {"json": (check, key, default, omit_none, flat, extra)}


_DECLARED: dict[type, tuple[Field, ...]] = {}


def declare(cls: type, **checks: Check) -> None:
    """Checks for a dataclass declared elsewhere, whose JSON keys are its attribute names."""
    _DECLARED[cls] = tuple(Field(f.name, f.name, checks[f.name]) for f in dataclasses.fields(cls))


def fields_of(cls: type) -> tuple[Field, ...]:
    found = _DECLARED.get(cls)
    if found is None:
        out = []
        for f in dataclasses.fields(cls):
            check, key, default, omit_none, flat, extra = f.metadata["json"]
            out.append(Field(f.name, key or f.name, check or ANY, default, omit_none, flat, extra))
        found = _DECLARED[cls] = tuple(out)
    return found


def parse(cls: type[T], value: Any, path: str = "") -> T:
    """The record ``cls`` read from the JSON object ``value``; `Malformed` if anything is off."""
    if not isinstance(value, dict):
        raise Malformed(path or "body")
    prefix = f"{path}." if path else ""
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    for f in fields_of(cls):
        if f.extra:
            continue
        if f.flat:
            kwargs[f.attr] = f.check.parse(value, path)
            known.update(k.key for k in fields_of(f.check.record or object))
            continue
        known.add(f.key)
        if f.key not in value:
            if f.default is _REQUIRED:
                raise Malformed(prefix + f.key)
            kwargs[f.attr] = f.default
        else:
            kwargs[f.attr] = f.check.parse(value[f.key], prefix + f.key)
    for f in fields_of(cls):
        if f.extra:
            kwargs[f.attr] = {k: v for k, v in value.items() if k not in known}
    return cls(**kwargs)


def dump(record: Any) -> dict[str, Any]:
    """The JSON object of a record (the inverse of `parse`)."""
    out: dict[str, Any] = {}
    for f in fields_of(type(record)):
        v = getattr(record, f.attr)
        if f.extra:
            out.update(v)
        elif f.flat:
            out.update(dump(v))
        elif not (f.omit_none and v is None):
            out[f.key] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, bytes):
        return v.hex()
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return dump(v)
    return v


def rows(cls: type, prefix: str = "", seen: dict[type, str] | None = None) -> list[tuple[str, str]]:
    """(dotted key, kind) of every field of a record and its nested records, for FORMAT.md; a record
    met a second time is named by where it was first listed."""
    seen = {} if seen is None else seen
    out: list[tuple[str, str]] = []
    for f in fields_of(cls):
        if f.extra:
            continue
        sub = f.check.record
        if f.flat and sub is not None:
            out += rows(sub, prefix, seen)
            continue
        kind = f.check.kind + (", or absent" if f.omit_none else "")
        if sub is not None and sub in seen:
            out.append((prefix + f.key, f"{kind}, as `{seen[sub]}`"))
            continue
        out.append((prefix + f.key, kind))
        if sub is not None:
            seen[sub] = prefix + f.key + ("[]" if f.check.kind.startswith("list") else "")
            out += rows(sub, seen[sub] + ".", seen)
    return out


# The checks. Each returns the typed value or raises Malformed(path).

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def uint(lo: int = 0, hi: int = (1 << 63) - 1) -> Check:
    def check(v: Any, path: str) -> int:
        if not _is_int(v) or not lo <= v <= hi:
            raise Malformed(path)
        return int(v)
    return Check("integer", check)


def one_of(*values: Any) -> Check:
    def check(v: Any, path: str) -> Any:
        # bool is an int: True must not pass for 1
        if isinstance(v, bool) or v not in values:
            raise Malformed(path)
        return v
    kind = "integer" if all(_is_int(x) for x in values) else "string"
    return Check(kind, check)


def _text(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise Malformed(path)
    return v


def _flag(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise Malformed(path)
    return v


TEXT = Check("string", _text)
FLAG = Check("boolean", _flag)
ANY = Check("any", lambda v, path: v)


def matching(pattern: str) -> Check:
    rx = re.compile(pattern)

    def check(v: Any, path: str) -> str:
        if not isinstance(v, str) or not rx.fullmatch(v):
            raise Malformed(path)
        return v
    return Check("string", check)


def hex_bytes(n: int) -> Check:
    """``n`` bytes written as lowercase hex."""
    rx = re.compile(f"[0-9a-f]{{{2 * n}}}")

    def check(v: Any, path: str) -> bytes:
        if not isinstance(v, str) or not rx.fullmatch(v):
            raise Malformed(path)
        return bytes.fromhex(v)
    return Check("hex string", check)


def optional(inner: Check) -> Check:
    def check(v: Any, path: str) -> Any:
        return None if v is None else inner.parse(v, path)
    return Check(f"{inner.kind} or null", check, inner.record)


def many(inner: Check, hi: int, lo: int = 0) -> Check:
    def check(v: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(v, list) or not lo <= len(v) <= hi:
            raise Malformed(path)
        return tuple(inner.parse(x, f"{path}[{i}]") for i, x in enumerate(v))
    return Check(f"list of {inner.kind}", check, inner.record)


def record(cls: type) -> Check:
    return Check("object", lambda v, path: parse(cls, v, path), cls)


def extents(hi_length: int) -> Check:
    """``[[offset, length], ...]`` as a tuple of pairs, lengths at least 1."""
    def check(v: Any, path: str) -> tuple[tuple[int, int], ...]:
        if not isinstance(v, list):
            raise Malformed(path)
        out = []
        for e in v:
            if not isinstance(e, list) or len(e) != 2 or not _is_int(e[0]) or not _is_int(e[1]) \
                    or not 0 <= e[0] <= hi_length or not 1 <= e[1] <= hi_length:
                raise Malformed(path)
            out.append((e[0], e[1]))
        return tuple(out)
    return Check("list of [offset, length]", check)
