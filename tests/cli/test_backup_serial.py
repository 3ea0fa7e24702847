"""An incremental onto a disk whose serial differs (the same disk through another controller or a USB
dock) is refused with what differs until the user confirms; anything else that differs is refused.

No device here reports a serial (loop devices and files have none), so the source's identity is the
parent's own, as recorded in its manifest, with the one field a dock changes: the decision of the
engine is what is tested, on a real image in a real folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.engine.backup import BackupOptions, _choose_parent, backup
from core.engine.chain import load_chain
from core.engine.repo import Repository
from core.errors import SerialChanged, UsageError
from core.progress import Progress
from tests.images import small_disk


def test_only_the_serial_differs_asks_and_anything_more_is_refused(tmp_path: Path) -> None:
    src = small_disk(tmp_path / "src.img")
    folder = tmp_path / "bk"
    full = backup(str(src), str(folder), BackupOptions(), Progress())
    repo = Repository(str(folder))
    recorded = load_chain(repo, full.image_id, lambda: None)[0].meta.source
    docked = dataclasses.replace(recorded, serial="WD-DOCK-0001")

    with pytest.raises(SerialChanged) as e:
        _choose_parent(repo, BackupOptions(mode="incremental"), docked)
    assert e.value.exit_code == 3
    assert "'WD-DOCK-0001'" in e.value.message and full.image_id in e.value.message
    assert "--yes" in e.value.message

    parent, chain = _choose_parent(repo, BackupOptions(mode="incremental", accept_serial_change=True), docked)
    assert parent and parent[0].image_id == full.image_id and chain[0].id == full.image_id

    # the serial and anything else: the old refusal, naming both, never a question
    for other in (dataclasses.replace(docked, size=recorded.size + 4096),
                  dataclasses.replace(docked, table_fingerprint="0" * 64)):
        with pytest.raises(UsageError) as refused:
            _choose_parent(repo, BackupOptions(mode="incremental", accept_serial_change=True), other)
        assert not isinstance(refused.value, SerialChanged)
        assert "serial" in refused.value.message and "make a new full backup" in refused.value.message
