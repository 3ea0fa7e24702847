"""A strict, bounded reader of Windows driver INF files: what adding a storage driver offline needs.

Read: ``[Version]`` (Signature, Class, ClassGUID, CatalogFile), ``[Manufacturer]`` and its models
sections with their target decorations (``NTamd64``, ``NTx86.6.1``, ...), hardware ids, the DDInstall
section (with its platform extension) and its ``.Services`` section, ``AddService`` with its
service-install section (ServiceType, StartType, ErrorControl, ServiceBinary, LoadOrderGroup),
``CopyFiles``, ``DestinationDirs``, ``SourceDisksFiles``, ``[Strings]`` (``%key%``) and ``%DIRID%``, and
``Include``/``Needs`` in the DDInstall and ``.Services`` sections: an INF may take sections from another
INF (usually one of Windows' own, such as mshdc.inf). The included INF is looked up by a resolver (beside
the INF by default; `rescue adapt` looks through the whole ``--drivers`` folder); one that is not there is
an error naming it, never skipped. A needed section is processed as the section that names it would be:
its CopyFiles (resolved in its own INF: DestinationDirs, SourceDisksFiles, Strings) with the DDInstall
section, its AddService entries with the ``.Services`` section. Needs do not nest (Microsoft's DDInstall
reference says so), so a Needs inside a needed section is an error.

The syntax follows Microsoft's "General syntax rules for INF files" (named in BOOT.md): ``;`` starts a
comment outside quotes, ``\\`` at the end of a line continues it, ``""`` inside quotes is one quote,
``%%`` is one percent sign, names are case-insensitive. Anything else we cannot read is a `FormatError`
naming the file and line: a driver is never installed from a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import FormatError

# Storage-driver INFs are tens to a few hundred KiB (Intel RST's is ~300 KiB); 4 MiB keeps a wrong file
# (an ISO, a driver pack archive) from being read whole into memory.
MAX_INF = 4 << 20
# Microsoft documents 4096 characters as the longest INF line (after continuation); a longer one is
# not an INF line Windows would accept either.
MAX_LINE = 4096
# String substitution is not recursive in Windows; one level deep is all we do, so no cap is needed
# there. Entries per section are bounded by the file size cap.

# DIRIDs that a boot driver's files and service use (Microsoft "Using Dirids").
DIRIDS = {10: "\\SystemRoot", 11: "\\SystemRoot\\System32", 12: "\\SystemRoot\\System32\\drivers"}
DRIVERS_DIRID = 12

SERVICE_KERNEL_DRIVER = 1
SPSVCINST_ASSOCSERVICE = 0x2  # AddService flag: the device's function driver

_ARCHES = {"x86", "amd64", "arm64", "ia64", "arm"}


@dataclass(frozen=True)
class Line:
    """One logical line: ``key`` (None when the line has no ``=``) and its comma-separated fields."""

    number: int
    key: str | None
    fields: list[str]


@dataclass
class ServiceInstall:
    name: str
    flags: int
    service_type: int
    start_type: int
    error_control: int
    binary: str  # as written, %DIRID% expanded: \SystemRoot\System32\drivers\x.sys
    group: str | None


@dataclass
class DriverChoice:
    """One device of one INF chosen for a set of hardware ids."""

    inf: Path
    description: str
    hardware_id: str  # the INF's id that matched (upper case, as written)
    models_section: str
    install_section: str
    class_name: str
    class_guid: str
    services: list[ServiceInstall] = field(default_factory=list)
    files: list[tuple[str, Path]] = field(default_factory=list)  # (name in \Windows\System32\drivers, source)
    # Files a Windows INF (one the driver includes) copies that are not beside it: Windows' own files,
    # which must already be in \Windows\System32\drivers. (name, that INF's file name)
    system_files: list[tuple[str, str]] = field(default_factory=list)
    included: list[Path] = field(default_factory=list)  # the INFs Include= named, as resolved
    skipped_files: list[str] = field(default_factory=list)  # files for other folders (not needed at boot)

    @property
    def function_service(self) -> ServiceInstall | None:
        return next((s for s in self.services if s.flags & SPSVCINST_ASSOCSERVICE), None)


def _decode(data: bytes) -> str:
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="strict")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # ANSI INFs (the usual case); names are ASCII


class Inf:
    """One INF file, parsed into sections of `Line`s (section names case-insensitive)."""

    def __init__(self, path: Path, data: bytes | None = None) -> None:
        self.path = path
        if data is None:
            try:
                size = path.stat().st_size
                if size > MAX_INF:
                    raise self.error(0, f"is {size} bytes, over {MAX_INF} (not a driver INF)")
                data = path.read_bytes()
            except OSError as e:
                raise FormatError(what=str(path), detail=e.strerror or str(e)) from e
        if len(data) > MAX_INF:
            raise self.error(0, f"is {len(data)} bytes, over {MAX_INF} (not a driver INF)")
        try:
            text = _decode(data)
        except UnicodeDecodeError as e:
            raise self.error(0, f"is not text ({e.reason})") from e
        self.sections: dict[str, list[Line]] = {}
        self.section_lines: dict[str, int] = {}
        self._parse(text)
        self.strings = self._strings()
        self._check_version()

    def error(self, number: int, detail: str) -> FormatError:
        where = f"{self.path}" + (f" line {number}" if number else "")
        return FormatError(what=where, detail=detail)

    # --- syntax ---------------------------------------------------------------------------------------

    def _parse(self, text: str) -> None:
        current: list[Line] | None = None
        pending = ""
        start = 0
        for number, raw in enumerate(text.splitlines(), 1):
            if "\x00" in raw:
                raise self.error(number, "holds a NUL character (not an INF)")
            body = self._strip_comment(raw, number).rstrip()
            if not pending:
                start = number
            if body.endswith("\\"):
                pending += body[:-1]
                if len(pending) > MAX_LINE:
                    raise self.error(start, f"line longer than {MAX_LINE} characters")
                continue
            body = (pending + body).strip()
            pending = ""
            if len(body) > MAX_LINE:
                raise self.error(start, f"line longer than {MAX_LINE} characters")
            if not body:
                continue
            if body.startswith("["):
                m = re.fullmatch(r"\[([^\[\]]+)\]", body)
                if m is None:
                    raise self.error(start, f"bad section header {body!r}")
                name = m.group(1).strip().lower()
                current = self.sections.setdefault(name, [])  # a repeated section continues (as Windows does)
                self.section_lines.setdefault(name, start)
                continue
            if current is None:
                raise self.error(start, "text before the first [section]")
            current.append(self._line(body, start))
        if pending:
            raise self.error(start, "the last line ends with a continuation \\")

    def _strip_comment(self, raw: str, number: int) -> str:
        quoted = False
        for i, ch in enumerate(raw):
            if ch == '"':
                quoted = not quoted
            elif ch == ";" and not quoted:
                return raw[:i]
        if quoted:
            raise self.error(number, "unterminated quoted string")
        return raw

    def _line(self, body: str, number: int) -> Line:
        key: str | None = None
        eq = _unquoted_index(body, "=")
        if eq is not None:
            key = _unquote(body[:eq].strip(), self, number)
            if not key:
                raise self.error(number, "an entry with nothing before '='")
            body = body[eq + 1:]
        fields = [_unquote(f.strip(), self, number) for f in _split_unquoted(body)]
        return Line(number, key, fields)

    # --- values ----------------------------------------------------------------------------------------

    def _strings(self) -> dict[str, str]:
        out: dict[str, str] = {}
        # [Strings] first; a localized [Strings.LLLL] fills only what [Strings] lacks.
        names = ["strings"] + sorted(n for n in self.sections if n.startswith("strings."))
        for name in names:
            for line in self.sections.get(name, []):
                if line.key is None or len(line.fields) != 1:
                    raise self.error(line.number, f"[{name}] entries are: key = \"string\"")
                if line.fields[0].replace("%%", "").count("%"):
                    raise self.error(line.number, "a lone % in a string (%% is a percent sign)")
                out.setdefault(line.key.lower(), line.fields[0].replace("%%", "%"))
        return out

    def expand(self, text: str, number: int) -> str:
        """``%key%`` from [Strings], ``%DIRID%`` from the DIRID table, ``%%`` as ``%``."""
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "":
                return "%"
            if name.isascii() and name.isdigit():
                if int(name) not in DIRIDS:
                    raise self.error(number, f"DIRID %{name}% is not one a boot driver uses")
                return DIRIDS[int(name)]
            value = self.strings.get(name.lower())
            if value is None:
                raise self.error(number, f"%{name}% is not in [Strings]")
            return value
        if text.count("%") % 2:
            raise self.error(number, f"unbalanced % in {text!r}")
        return re.sub(r"%([^%]*)%", sub, text)

    def section(self, name: str, number: int = 0) -> list[Line]:
        lines = self.sections.get(name.lower())
        if lines is None:
            raise self.error(number, f"section [{name}] is missing")
        return lines

    def value(self, section: str, key: str) -> tuple[str, int] | None:
        """The expanded first field of ``key`` in ``section`` and its line, or None."""
        for line in self.sections.get(section.lower(), []):
            if line.key is not None and line.key.lower() == key.lower():
                if len(line.fields) != 1:
                    raise self.error(line.number, f"{key} takes one value")
                return self.expand(line.fields[0], line.number), line.number
        return None

    def _check_version(self) -> None:
        sig = self.value("Version", "Signature")
        if sig is None:
            raise self.error(self.section_lines.get("version", 0), "no [Version] Signature (not a driver INF)")
        if sig[0].lower() not in ("$windows nt$", "$chicago$"):
            raise self.error(sig[1], f"Signature {sig[0]!r} is neither $Windows NT$ nor $Chicago$")

    @property
    def is_windows_inf(self) -> bool:
        """Whether this is one of Windows' own INFs: those name a ``LayoutFile`` (layout.inf lists where
        their files come from; they are on every Windows) and never a ``CatalogFile`` (Microsoft's INF
        Version section reference), which a driver package has beside it."""
        version = self.sections.get("version", [])
        keys = {line.key.lower() for line in version if line.key}
        return "layoutfile" in keys and not any(k.startswith("catalogfile") for k in keys)

    def version_field(self, key: str, arch: str | None = None) -> str:
        """A [Version] value, the ``key.NT<arch>`` form first when ``arch`` is given ("" when absent)."""
        if arch is not None:
            got = self.value("Version", f"{key}.NT{arch}")
            if got is not None:
                return got[0]
        got = self.value("Version", key)
        return got[0] if got is not None else ""

    def number(self, section: str, key: str) -> int:
        got = self.value(section, key)
        if got is None:
            raise self.error(self.section_lines.get(section.lower(), 0), f"[{section}] has no {key}")
        text, number = got
        try:
            return int(text, 0)
        except ValueError:
            raise self.error(number, f"{key} = {text!r} is not a number") from None


def _unquoted_index(text: str, ch: str) -> int | None:
    quoted = False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            return i
    return None


def _split_unquoted(text: str) -> list[str]:
    out, cur, quoted = [], "", False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return out


def _unquote(text: str, inf: Inf, number: int) -> str:
    """A field: quoted parts lose their quotes (``""`` is one quote), unquoted parts are kept."""
    out, i, quoted = "", 0, False
    while i < len(text):
        c = text[i]
        if c == '"':
            if quoted and text[i + 1:i + 2] == '"':
                out += '"'
                i += 2
                continue
            quoted = not quoted
        else:
            out += c
        i += 1
    if quoted:
        raise inf.error(number, "unterminated quoted string")
    return out


# --- platform decorations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the driver must run on: ``arch`` "x86" or "amd64", Windows ``version`` (6, 1) for 7, and its
    ``build`` number when known (a decoration naming a build applies only when the build is known)."""

    arch: str
    version: tuple[int, int]
    build: int | None = None


def _decoration_rank(decoration: str, target: Target, inf: Inf, number: int) -> tuple[int, int, int, int] | None:
    """How well ``NT[arch][.major[.minor[.type[.suite[.build]]]]]`` fits ``target`` (higher is better), None if
    it does not. Product type and suite mask (workstation/server) are not told by the SYSTEM hive, so they do
    not rank; a build number applies only to a Windows whose build is known and not older."""
    parts = decoration.split(".")
    head = parts[0].lower()
    if not head.startswith("nt"):
        raise inf.error(number, f"target decoration {decoration!r} does not start with NT")
    arch = head[2:]
    if arch and arch not in _ARCHES:
        raise inf.error(number, f"unknown architecture in decoration {decoration!r}")
    if arch and arch != target.arch:
        return None
    if len(parts) > 6:
        raise inf.error(number, f"decoration {decoration!r} has more than NTarch.major.minor.type.suite.build")
    try:
        nums = [int(p, 0) if p else 0 for p in parts[1:3]]
        build = int(parts[5], 0) if len(parts) == 6 and parts[5] else 0
    except ValueError:
        raise inf.error(number, f"bad OS version in decoration {decoration!r}") from None
    version = (nums + [0, 0])[:2]
    if (version[0], version[1]) > target.version:
        return None
    if build and (target.build is None or build > target.build):
        return None
    return (1 if arch else 0, version[0], version[1], build)  # a bare "NT" is for every architecture


def models_for(inf: Inf, target: Target) -> list[tuple[str, str]]:
    """(manufacturer, models section) pairs of [Manufacturer] that apply to ``target``."""
    out = []
    for line in inf.section("Manufacturer"):
        if not line.fields or not line.fields[0]:
            raise inf.error(line.number, "a [Manufacturer] entry names no models section")
        name = inf.expand(line.key or line.fields[0], line.number)
        base = inf.expand(line.fields[0], line.number)
        decorations = [inf.expand(f, line.number) for f in line.fields[1:] if f]
        if not decorations:
            if target.arch == "x86":  # undecorated models serve only 32-bit Windows
                out.append((name, base))
            continue
        ranked = [(r, d) for d in decorations if (r := _decoration_rank(d, target, inf, line.number)) is not None]
        if ranked:
            best = max(ranked, key=lambda x: x[0])[1]
            out.append((name, f"{base}.{best}"))
    return out


# --- the device's install ----------------------------------------------------------------------------


# Given the name an Include= entry gives (``mshdc.inf``), the INF naming it and its line: the included Inf.
Resolver = Callable[[str, Inf, int], Inf]


def beside(name: str, inf: Inf, number: int) -> Inf:
    """The default `Resolver`: the included INF in the same folder as ``inf`` (names case-insensitive)."""
    folder = inf.path.parent
    match = next((c for c in sorted(folder.iterdir()) if c.name.lower() == name.lower() and c.is_file()), None)
    if match is None:
        raise inf.error(number, f"Include={name}: {name} is not in {folder}; it is needed to install this "
                                f"driver (a Windows INF: copy it from \\Windows\\INF of the same Windows there)")
    return Inf(match)


def find_device(inf: Inf, target: Target, ids: list[str], include: Resolver = beside) -> DriverChoice | None:
    """The model of ``inf`` for the first (most specific) of ``ids`` (``PCI\\VEN_...``), or None."""
    wanted = [i.upper() for i in ids]
    best: tuple[int, str, str, str, int] | None = None
    for _, section in models_for(inf, target):
        for line in inf.section(section, inf.section_lines.get("manufacturer", 0)):
            if line.key is None or len(line.fields) < 2:
                raise inf.error(line.number, "a model entry is: description = install-section, hardware-id[, ...]")
            for hwid in line.fields[1:]:
                hw = inf.expand(hwid, line.number).strip().upper()
                if hw in wanted:
                    rank = wanted.index(hw)
                    if best is None or rank < best[0]:
                        best = (rank, inf.expand(line.key, line.number), inf.expand(line.fields[0], line.number),
                                section, line.number)
    if best is None:
        return None
    _, description, install, section, number = best
    return _install(inf, target, description, wanted[best[0]], section, install, number, include)


def _install_section(inf: Inf, target: Target, install: str, number: int) -> str:
    for name in (f"{install}.NT{target.arch}", f"{install}.NT", install):
        if name.lower() in inf.sections:
            return name
    raise inf.error(number, f"install section [{install}] is missing")


# Include= names a few Windows INFs at most; more in one section is not a driver INF we should follow.
MAX_INCLUDES = 16


def _includes(inf: Inf, section: str, include: Resolver, cache: dict[str, Inf]) -> list[Inf]:
    """The INFs the ``Include=`` entries of ``section`` name, resolved (each once per driver)."""
    out: list[Inf] = []
    for line in inf.sections.get(section.lower(), []):
        if line.key is None or line.key.lower() != "include":
            continue
        for item in line.fields:
            name = inf.expand(item, line.number).strip()
            if not name:
                continue
            if any(c in name for c in "\\/:") or name in (".", "..") or not name.lower().endswith(".inf"):
                raise inf.error(line.number, f"Include={name!r} is not the plain name of an .inf file")
            got = cache.get(name.lower())
            if got is None:
                got = cache[name.lower()] = include(name, inf, line.number)
            if got not in out:
                out.append(got)
            if len(out) > MAX_INCLUDES:
                raise inf.error(line.number, f"[{section}] includes more than {MAX_INCLUDES} INF files")
    return out


def _with_needs(inf: Inf, section: str, includes: list[Inf]) -> list[tuple[Inf, str]]:
    """``section`` of ``inf`` and then each section its ``Needs=`` names, with the INF that holds it.

    A needed section is looked up in the INF itself and in the included ones; a name found in more than
    one of them is refused rather than one picked. Needs do not nest.
    """
    out = [(inf, section)]
    for line in inf.sections.get(section.lower(), []):
        if line.key is None or line.key.lower() != "needs":
            continue
        for item in line.fields:
            name = inf.expand(item, line.number).strip()
            if not name:
                continue
            holders = [i for i in [inf, *includes] if name.lower() in i.sections]
            if not holders:
                where = ", ".join(i.path.name for i in includes) if includes else "no INF (no Include= names one)"
                raise inf.error(line.number, f"Needs={name}: section [{name}] is in neither {inf.path.name} nor "
                                             f"the included {where}")
            if len(holders) > 1:
                raise inf.error(line.number, f"Needs={name}: section [{name}] is in both {holders[0].path.name} "
                                             f"and {holders[1].path.name}")
            holder = holders[0]
            nested = next((x for x in holder.sections[name.lower()] if x.key and x.key.lower() == "needs"), None)
            if nested is not None:
                raise holder.error(nested.number, f"[{name}] (named by Needs= in {inf.path.name} line {line.number}) "
                                                  "has a Needs= itself: Needs do not nest")
            if (holder, name.lower()) not in [(h, n.lower()) for h, n in out]:
                out.append((holder, name))
    return out


def _install(inf: Inf, target: Target, description: str, hwid: str, models: str, install: str,
             number: int, include: Resolver = beside) -> DriverChoice:
    section = _install_section(inf, target, install, number)
    choice = DriverChoice(inf.path, description, hwid, models, section,
                          inf.version_field("Class"), inf.version_field("ClassGUID"))
    services = f"{section}.services".lower()
    if services not in inf.sections:
        raise inf.error(number, f"[{section}.Services] is missing: no driver service to install")
    cache: dict[str, Inf] = {}
    install_includes = _includes(inf, section, include, cache)
    # Windows appends an included INF to the one being installed, so what the DDInstall section includes
    # is there for its .Services section too.
    service_includes = install_includes + [i for i in _includes(inf, services, include, cache)
                                           if i not in install_includes]
    choice.included = [i.path for i in service_includes]
    for holder, sect_name in _with_needs(inf, services, service_includes):
        _services(holder, sect_name, choice)
    if choice.function_service is None:
        raise inf.error(inf.section_lines[services],
                        f"[{section}.Services] has no AddService with flag 0x2 (the device's driver)")
    for holder, sect_name in _with_needs(inf, section, install_includes):
        _files(holder, target, sect_name, choice, own=not holder.is_windows_inf)
    return choice


def _services(inf: Inf, section: str, choice: DriverChoice) -> None:
    """The AddService entries of ``section`` (a DDInstall.Services section, or one its Needs= names)."""
    for line in inf.sections[section.lower()]:
        if line.key is None or line.key.lower() != "addservice":
            continue  # DelService, Include/Needs (handled by the caller): nothing a boot driver needs offline
        if len(line.fields) < 3 or not line.fields[0]:
            raise inf.error(line.number, "AddService is: name, flags, service-install-section[, ...]")
        flags_text = inf.expand(line.fields[1] or "0", line.number)
        try:
            flags = int(flags_text, 0)
        except ValueError:
            raise inf.error(line.number, f"AddService flags {flags_text!r} are not a number") from None
        sect = inf.expand(line.fields[2], line.number)
        inf.section(sect, line.number)
        binary = inf.value(sect, "ServiceBinary")
        if binary is None:
            raise inf.error(inf.section_lines[sect.lower()], f"[{sect}] has no ServiceBinary")
        group = inf.value(sect, "LoadOrderGroup")
        name = inf.expand(line.fields[0], line.number)
        if not name or any(c in name for c in "\\/") or len(name) > 255:
            # the name becomes a registry key under Services: it may not reach any other key
            raise inf.error(line.number, f"AddService name {name!r} is not a plain service name")
        if any(s.name.lower() == name.lower() for s in choice.services):
            raise inf.error(line.number, f"service {name} is added twice (here and by an earlier AddService)")
        choice.services.append(ServiceInstall(
            name, flags, inf.number(sect, "ServiceType"),
            inf.number(sect, "StartType"), inf.number(sect, "ErrorControl"), binary[0],
            group[0] if group else None))


def _dest_dirid(inf: Inf, copy_section: str) -> int:
    got = inf.value("DestinationDirs", copy_section) or inf.value("DestinationDirs", "DefaultDestDir")
    if got is None:
        raise inf.error(inf.section_lines.get("destinationdirs", 0),
                        f"[DestinationDirs] names no folder for {copy_section}")
    text, number = got
    dirid = text.split(",")[0].strip()
    if not (dirid.isascii() and dirid.isdigit()):
        raise inf.error(number, f"destination {text!r} is not a DIRID")
    return int(dirid)


def _files(inf: Inf, target: Target, section: str, choice: DriverChoice, own: bool = True) -> None:
    """The CopyFiles of ``section``; ``own`` False for a Windows INF (usually an included one), whose files
    not beside it are Windows' own and must be on the Windows already. A driver package's files must be
    beside its INF, an included one's too."""
    for line in inf.section(section):
        if line.key is None or line.key.lower() != "copyfiles":
            continue
        for item in line.fields:
            item = inf.expand(item, line.number).strip()
            if not item:
                continue
            if item.startswith("@"):
                names, dirid = [item[1:]], _dest_dirid(inf, "DefaultDestDir")
            else:
                names = [inf.expand(x.fields[0], x.number) for x in inf.section(item, line.number) if x.fields]
                dirid = _dest_dirid(inf, item)
            for name in names:
                if not name or "/" in name or "\\" in name or name in (".", ".."):
                    raise inf.error(line.number, f"file name {name!r} is not a plain name")
                if dirid != DRIVERS_DIRID:
                    choice.skipped_files.append(name)
                    continue
                if any(n.lower() == name.lower() for n, _ in choice.files) or \
                        any(n.lower() == name.lower() for n, _ in choice.system_files):
                    continue  # the same file named again (by a needed section too): copied once
                src = _source(inf, target, name, line.number, required=own)
                if src is None:
                    choice.system_files.append((name, inf.path.name))
                else:
                    choice.files.append((name, src))


def _source(inf: Inf, target: Target, name: str, number: int, required: bool = True) -> Path | None:
    """Where ``name`` is beside the INF: [SourceDisksFiles(.arch)] may give a subfolder. None when it is
    not there and not ``required``."""
    sub = ""
    for sect in (f"SourceDisksFiles.{target.arch}", "SourceDisksFiles"):
        got = next((x for x in inf.sections.get(sect.lower(), []) if x.key and x.key.lower() == name.lower()),
                   None)
        if got is not None:
            sub = inf.expand(got.fields[1], got.number).strip("\\/ ") if len(got.fields) > 1 else ""
            break
    folder = inf.path.parent
    for part in [p for p in sub.replace("\\", "/").split("/") if p] + [name]:
        if part in (".", ".."):
            raise inf.error(number, f"source folder of {name} leaves the driver folder")
        match = next((c for c in sorted(folder.iterdir()) if c.name.lower() == part.lower()), None) \
            if folder.is_dir() else None
        if match is None:
            if not required:
                return None
            raise inf.error(number, f"{name} is not in {inf.path.parent} (needed by the driver)")
        folder = match
    if not folder.is_file():
        raise inf.error(number, f"{folder} is not a file")
    return folder
