"""One error root for the whole engine, with stable exit codes, and the warnings a finished job reports.

Each class's docstring starts with its message template (``str.format`` with the keyword arguments
given when raising), and ``exit_code`` is part of the public interface: scripts act on it, so a code is
never reused for another meaning, even after its class is retired. ``meaning`` is what the code means
to a user: README's exit-code table and `rescue --help` list exactly these (`exit_codes`), and a test
fails when a code is not documented.

Ranges (after borg): 0 success, 1 warning, 2 generic error, 3-99 specific errors, 100-127 specific
warnings, 128+ signals (130 = interrupted by SIGINT / cancelled).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Self, TypeVar

T = TypeVar("T")


def _format(cls: type, kwargs: dict[str, Any]) -> str:
    template = (cls.__doc__ or "{detail}").strip().splitlines()[0]
    try:
        return template.format(**kwargs)
    except (KeyError, IndexError, ValueError):
        return f"{template} {kwargs!r}"


class Error(Exception):
    """Error: {detail}"""

    exit_code: ClassVar[int] = 2
    meaning: ClassVar[str] = "internal error (a bug: please report it with `RESCUE_DEBUG=1` output)"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(_format(type(self), kwargs))

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(Error):
    """{detail}"""

    exit_code = 3
    meaning = "usage error: bad option, missing confirmation, nothing was done"


class BusyError(UsageError):
    """{detail}"""

    # A mount still in use (a shell inside it): nothing was done, like any usage error.


class SerialChanged(UsageError):
    """The source's serial is {new!r} where image {image} has {old!r}, but its size, sector size and partition table (identifiers and layout) are the same: the same disk through another controller or USB dock? Confirm (--yes, or type its name) to continue the chain, or make a new full backup"""

    # Refused until the user confirms (nothing was done); the CLI asks, the engine continues the
    # chain when `BackupOptions.accept_serial_change` says so.


class SourceError(Error):
    """Cannot read source {path}: {detail}"""

    exit_code = 4
    meaning = "the source cannot be read (missing, not a disk, I/O error)"


class SourceGone(SourceError):
    """Source {path} stopped answering: {detail}"""

    # Every read fails from some point on (a USB disk pulled out, a disk that died): not bad sectors to
    # record as unreadable in an image that would then hold nothing of the rest, but the end of the job.


class FormatError(Error, ValueError):
    """{what}: {detail}"""

    # A foreign on-disk structure (partition table, boot sector, MFT record, hive ...) is malformed.
    exit_code = 5
    meaning = "a disk structure (partition table, filesystem) is malformed"


class UnsupportedError(Error):
    """{detail}"""

    exit_code = 6
    meaning = "unsupported (e.g. a filesystem feature we refuse to guess about)"


class DirtyHiveError(UnsupportedError):
    """hive {hive} is dirty and was not replayed from its logs: {detail}"""

    # A dirty registry hive whose transaction logs are missing, damaged or inconsistent: it is left as
    # it is (never half-recovered) and the reason says which log and what was wrong.


class RepositoryError(Error):
    """Backup folder {path}: {detail}"""

    exit_code = 7
    meaning = "backup folder problem (missing, not writable, on a RAM filesystem)"


class RamFolderError(RepositoryError):
    """{what} {path} is in RAM ({fs}), gone at power-off: mount a disk there, or pass --allow-ram"""

    # exit code 7, like any backup folder problem (a restore's or clone's scratch folder too)


class LockedError(RepositoryError):
    """Backup folder {path} is in use by another process ({detail})"""

    exit_code = 8
    meaning = "backup folder is locked by another running backup"


class ImageNotFound(RepositoryError):
    """Backup folder {path}: {detail}"""

    exit_code = 9
    meaning = "no such image in the folder"


class DestinationFull(RepositoryError):
    """No space left in backup folder {path}: {detail}"""

    exit_code = 10
    meaning = "no space left in the backup folder (the partial image is removed)"


class RemoteError(RepositoryError):
    """Backup folder {path}: {detail}"""

    exit_code = 11
    meaning = ("the backup folder on the network cannot be reached or the connection was lost (an image "
               "being written is left incomplete, never listed complete; run the backup again)")


class RemoteAuthError(RemoteError):
    """Backup folder {path}: {detail}"""

    exit_code = 12
    meaning = ("the network folder refused the credentials, or its host key is unknown or changed "
               "(see --credentials-file, --accept-host-key)")


class IntegrityError(Error):
    """Integrity check failed: {detail}"""

    # Anything in an image that does not match what was written: corrupt or truncated volume, missing or
    # foreign volume, bad record, digest mismatch, failed authentication of data (not of the key slot).
    exit_code = 20
    meaning = ("integrity failure: corrupt, truncated, foreign or reordered volume, bad block, "
               "damaged manifest")


class IncompleteImage(IntegrityError):
    """Image {image} is incomplete: {detail}"""

    exit_code = 21
    meaning = "incomplete image (a volume or the manifest is missing: the backup did not finish)"


class NewerFormat(IntegrityError):
    """{what} needs a newer version of this program: {detail}"""

    exit_code = 22
    meaning = "the image needs a newer version of this program"


class SelftestError(Error):
    """Self-test failed: {detail} (this build is broken; do not use it)"""

    exit_code = 23
    meaning = "the self-test of the crypto and compression libraries failed: this build is broken"


class WrongPassword(Error):
    """Wrong password for image {image}"""

    exit_code = 30
    meaning = "wrong password"


class PasswordRequired(Error):
    """Image {image} is encrypted: give --password-file, set RESCUE_PASSWORD, or run on a terminal to type it"""

    exit_code = 31
    meaning = "the image is encrypted and no password was given"


class TargetRefused(Error):
    """Refusing target {target}: {detail}"""

    exit_code = 40
    meaning = ("target refused (is the source, holds the image, mounted, in use, read-only, too small, "
               "wrong sector size)")


class TargetWriteError(Error):
    """Writing to target {target} failed: {detail}"""

    exit_code = 41
    meaning = "writing to the target failed (the target is left without a partition table; rerun)"


class VerifyAfterWriteError(Error):
    """Read-back of target {target} does not match the image: {detail}"""

    exit_code = 42
    meaning = "the target read back differently from the image"


class SessionError(Error):
    """Restore session: {detail}"""

    exit_code = 50
    meaning = ("a network restore session failed: a client refused, failed or was lost (rescue serve names "
               "each), or a client lost the session's stream or server (nothing unauthenticated was written)")


class Cancelled(Error):
    """Interrupted: {detail}"""

    exit_code = 130
    meaning = "interrupted (Ctrl-C, SIGTERM, or cancelled)"


# --- warnings: not raised, returned in results; the CLI turns them into lines and the exit code ------


class Warning_(str):
    """{detail}"""

    # A warning is its one-line message (a str: results, JSON and manifests keep plain text) whose class
    # carries the exit code. Engine code may still report plain strings: those are notes, exit 0. A
    # Warning_ of this base class is a generic warning, exit 1.
    exit_code: ClassVar[int] = 1
    meaning: ClassVar[str] = "warning (generic)"

    def __new__(cls, **kwargs: Any) -> Self:
        return super().__new__(cls, _format(cls, kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy (dataclasses.asdict) and pickle rebuild through __new__, which takes the
        # template's fields, not the finished text: rebuild from the text instead.
        return (_warning_from_text, (type(self), str(self)))

    def located(self, where: str) -> Warning_:
        """The same warning (same class and code) about a part of something bigger: "WHERE: message"."""
        return str.__new__(type(self), f"{where}: {self}")


def _warning_from_text(cls: type[Warning_], text: str) -> Warning_:
    return str.__new__(cls, text)


class UnreadableSectorsWarning(Warning_):
    """{detail}"""

    # Source sectors could not be read; they are recorded in the image and reported on restore.
    exit_code = 100
    meaning = "done, but some source sectors were unreadable (recorded in the image, reported on restore)"


class FilesystemStateWarning(Warning_):
    """{detail}"""

    # A filesystem was dirty or hibernated; it was imaged as it is, never modified.
    exit_code = 101
    meaning = "done, but a filesystem was dirty or hibernated (imaged as it is)"


class BootRepairWarning(Warning_):
    """boot repair: {detail}"""

    # The boot repair finished but left something undone; its report says what.
    exit_code = 102
    meaning = ("boot repair done, but something was left undone (dirty hive, hibernated Windows, BitLocker "
               "boot sector, a device that still points nowhere): see the report")


class SectorBySectorWarning(Warning_):
    """{fs} metadata unusable{where} ({detail}): imaged sector by sector"""

    # The allocation map could not be trusted, so every sector was stored: complete, only larger.
    exit_code = 103
    meaning = ("done, but a filesystem's metadata was unusable and it was imaged sector by sector "
               "(complete, larger; the filesystem is probably damaged)")


class BackupGptWarning(Warning_):
    """primary GPT damaged ({detail}); using the backup at LBA {lba}"""

    exit_code = 104
    meaning = "done, but the primary GPT was damaged and the backup GPT was used"


def located(warning: str, where: str) -> str:
    """``warning`` about a part of something bigger ("WHERE: message"), keeping its class if it has one."""
    return warning.located(where) if isinstance(warning, Warning_) else f"{where}: {warning}"


def warnings_exit_code(warnings: Iterable[str]) -> int:
    """The exit code of a job that finished with these warnings: the most severe specific warning
    (the lowest code of 100-127), else 1 for a generic warning, else 0 (plain notes only)."""
    codes = {w.exit_code for w in warnings if isinstance(w, Warning_)}
    specific = sorted(c for c in codes if c >= 100)
    return specific[0] if specific else (1 if codes else 0)


def _subclasses(root: type[T]) -> list[type[T]]:
    out: list[type[T]] = []
    todo = [root]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def all_error_classes() -> list[type[Error]]:
    """Every error class (including subclasses defined outside this module), for the uniqueness test."""
    return _subclasses(Error)


def all_warning_classes() -> list[type[Warning_]]:
    return _subclasses(Warning_)


def exit_codes() -> list[tuple[int, str]]:
    """Every documented exit code and its meaning, in order: what README's table and `rescue --help` list.
    A class documents its code by declaring ``meaning`` itself (a subclass reusing its parent's code
    does not)."""
    rows = {0: "success"}
    classes: list[type[Error] | type[Warning_]] = [*all_error_classes(), *all_warning_classes()]
    for cls in classes:
        if "meaning" in cls.__dict__:
            rows[cls.exit_code] = cls.meaning
    return sorted(rows.items())
