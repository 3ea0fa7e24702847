"""One error root for the whole engine, with stable exit codes.

Each class's docstring is its message template (``str.format`` with the keyword arguments given when
raising), and ``exit_code`` is part of the public interface: scripts act on it, so a code is never
reused for another meaning, even after its class is retired.

Ranges (after borg): 0 success, 1 warning, 2 generic error, 3-99 specific errors, 100-127 specific
warnings, 128+ signals (130 = interrupted by SIGINT / cancelled).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Error(Exception):
    """Error: {detail}"""

    exit_code: ClassVar[int] = 2

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        template = (type(self).__doc__ or "{detail}").strip().splitlines()[0]
        try:
            message = template.format(**kwargs)
        except (KeyError, IndexError, ValueError):
            message = f"{template} {kwargs!r}"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(Error):
    """{detail}"""

    exit_code = 3


class SourceError(Error):
    """Cannot read source {path}: {detail}"""

    exit_code = 4


class FormatError(Error, ValueError):
    """{what}: {detail}"""

    # A foreign on-disk structure (partition table, boot sector, MFT record, hive ...) is malformed.
    exit_code = 5


class UnsupportedError(Error):
    """{detail}"""

    exit_code = 6


class RepositoryError(Error):
    """Backup folder {path}: {detail}"""

    exit_code = 7


class LockedError(RepositoryError):
    """Backup folder {path} is in use by another process ({detail})"""

    exit_code = 8


class ImageNotFound(RepositoryError):
    """Backup folder {path}: {detail}"""

    exit_code = 9


class DestinationFull(RepositoryError):
    """No space left in backup folder {path}: {detail}"""

    exit_code = 10


class IntegrityError(Error):
    """Integrity check failed: {detail}"""

    # Anything in an image that does not match what was written: corrupt or truncated volume, missing or
    # foreign volume, bad record, digest mismatch, failed authentication of data (not of the key slot).
    exit_code = 20


class IncompleteImage(IntegrityError):
    """Image {image} is incomplete: {detail}"""

    exit_code = 21


class NewerFormat(IntegrityError):
    """{what} needs a newer version of this program: {detail}"""

    exit_code = 22


class WrongPassword(Error):
    """Wrong password for image {image}"""

    exit_code = 30


class PasswordRequired(Error):
    """Image {image} is encrypted: give --password-file or set RESCUE_PASSWORD"""

    exit_code = 31


class TargetRefused(Error):
    """Refusing target {target}: {detail}"""

    exit_code = 40


class TargetWriteError(Error):
    """Writing to target {target} failed: {detail}"""

    exit_code = 41


class VerifyAfterWriteError(Error):
    """Read-back of target {target} does not match the image: {detail}"""

    exit_code = 42


class Cancelled(Error):
    """Interrupted: {detail}"""

    exit_code = 130


# --- warnings: not raised, collected in results; the CLI maps the worst one to the exit code --------


class Warning_:
    """Base of reportable warnings (not exceptions): a finished job that the user must look at."""

    exit_code: ClassVar[int] = 1


class UnreadableSectorsWarning(Warning_):
    """Source sectors could not be read; they are recorded in the image and reported on restore."""

    exit_code = 100


class FilesystemStateWarning(Warning_):
    """A filesystem was dirty or hibernated; it was imaged as is, never modified."""

    exit_code = 101


class BootRepairWarning(Warning_):
    """The boot repair finished but left something undone (dirty hive, hibernated Windows, BitLocker
    boot sector, a device that still points nowhere); its report says what."""

    exit_code = 102


def all_error_classes() -> list[type[Error]]:
    """Every error class, for the README exit-code table and the uniqueness test."""
    out: list[type[Error]] = []
    todo: list[type[Error]] = [Error]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out
