"""Issue 16: how FOLDER names a remote folder, and what is refused before anything is contacted
(a password in the address would show in `ps`; s3:// needs its store's address)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UsageError
from core.remote import Location, parse, read_credentials
from tests.crash.crashlib import one_error_line
from tests.images import run_rescue


@pytest.mark.parametrize("folder, want", [
    ("/mnt/usb/pc1", None),
    ("relative/dir", None),
    ("sftp://nas/srv/bk/pc1", Location("sftp", "nas", None, None, "srv/bk/pc1", "sftp://nas/srv/bk/pc1")),
    ("sftp://tech@nas.local:2222/srv/b%20k/", Location("sftp", "nas.local", 2222, "tech", "srv/b k",
                                                       "sftp://tech@nas.local:2222/srv/b%20k/")),
    ("s3://Backups/pc1/disk0", Location("s3", "Backups", None, None, "pc1/disk0", "s3://Backups/pc1/disk0")),
    ("s3://backups", Location("s3", "backups", None, None, "", "s3://backups")),
    ("smb://tech@nas:4450/Backups/pc%201", Location("smb", "nas", 4450, "tech", "Backups/pc 1",
                                                    "smb://tech@nas:4450/Backups/pc%201")),
    ("nfs://nas/srv/nfs/pc1", Location("nfs", "nas", None, None, "srv/nfs/pc1", "nfs://nas/srv/nfs/pc1")),
])
def test_parse(folder: str, want: Location | None) -> None:
    assert parse(folder) == want


@pytest.mark.parametrize("folder, says", [
    ("sftp://tech:secret@nas/srv", "no password in the address"),
    ("ftp://nas/share", "unknown kind of folder"),
    ("smb://tech:secret@nas/share", "no password in the address"),
    ("sftp:///srv", "names no host"),
    ("sftp://nas:99999/srv", "port"),
    ("s3://tech@bucket/p", "takes no user or port"),
    ("sftp://nas/srv/../etc", "'..' are not allowed"),
    ("s3://bucket/p?versionId=1", "no ?query"),
])
def test_refused_addresses(folder: str, says: str) -> None:
    with pytest.raises(UsageError) as e:
        parse(folder)
    assert says in e.value.message
    assert "secret" not in e.value.message


def test_credentials_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c"
    f.write_text("# comment\n\nUser = tech\npassword = p=with=equals  \n")
    monkeypatch.setenv("RESCUE_S3_SECRET_ACCESS_KEY", "from-env")
    c = read_credentials(str(f))
    assert c.get("user") == "tech" and c.get("password") == "p=with=equals"
    assert c.get("secret_access_key") == "from-env"
    # each kind of folder takes its password from its own variable
    monkeypatch.setenv("RESCUE_SMB_PASSWORD", "smb-env")
    assert read_credentials(None, "smb").get("password") == "smb-env"
    assert read_credentials(None, "sftp").get("password") is None
    f.write_text("user = tech\nthis line holds the secret hunter2\n")
    with pytest.raises(UsageError) as e:
        read_credentials(str(f))
    assert "line 2" in e.value.message and "hunter2" not in e.value.message


def test_cli_refuses_before_contacting_anything(tmp_path: Path) -> None:
    r = run_rescue("list", "s3://backups/pc1")
    assert r.returncode == 3 and "--s3-endpoint" in one_error_line(r.stderr), r.stderr
    r = run_rescue("list", "sftp://tech:hunter2@nas/srv")
    assert r.returncode == 3, r.stderr
    assert "hunter2" not in r.stderr and "no password in the address" in one_error_line(r.stderr)
    r = run_rescue("list", "smb://nas")
    assert r.returncode == 3 and "names no share" in one_error_line(r.stderr), r.stderr
    r = run_rescue("list", "nfs://tech@nas/srv")
    assert r.returncode == 3 and "takes no user" in one_error_line(r.stderr), r.stderr
    r = run_rescue("list", "smb://nas/share", "--accept-host-key", "SHA256:x")
    assert r.returncode == 3 and "for sftp:// folders" in one_error_line(r.stderr), r.stderr
    r = run_rescue("list", str(tmp_path), "--s3-endpoint", "http://x")
    assert r.returncode == 3 and "local folder" in one_error_line(r.stderr), r.stderr
