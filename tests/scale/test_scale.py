"""Proof at scale without the disk space: a 64 GiB synthetic disk with 1 GiB of data
(tests/scale/synthdisk.py, served through FUSE), backed up in full, again incrementally after ~1 % of
its blocks changed, that point verified and restored onto a sparse file, then merged; each run a
fresh `rescue` process whose own peak RSS is measured (tests/scale/peak.py).

The bounds are the project's targets for any disk size: peak RSS <= 150 MiB per run, and an
incremental's manifest <= 64 KiB + 0.5 % of the data it stores (format version 2 records only an
image's own changes). bench/scale.py runs the same at larger sizes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import need_root_tools
from tests.scale import harness
from tests.scale.peak import TIME
from tests.scale.synthdisk import GiB, Layout, build

pytestmark = [pytest.mark.root, pytest.mark.slow]

MiB = 1 << 20
DISK, USED = 64 * GiB, 1 * GiB
RSS_BOUND = 150 * MiB
Scale = tuple[Layout, dict[str, harness.Step]]


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scale]:
    need_root_tools("mkntfs", "sfdisk", "losetup", "fusermount3", TIME)
    work = tmp_path_factory.mktemp("scale")
    layout = build(work, DISK, USED)
    yield layout, {s.name: s for s in harness.run(layout, work)}
    shutil.rmtree(work)  # ~1.5 GB of images and a 64 GiB sparse base: not for pytest's kept folders


def test_the_engine_reads_the_synthetic_disk_as_designed(scale: Scale) -> None:
    """The NTFS reader trusts the $Bitmap we set: each backup reads every synthetic byte (plus the
    metadata mkntfs wrote: $LogFile, $MFT, $Bitmap), and generation 1 changed ~1 % of it, which is
    what the incremental stores."""
    layout, steps = scale
    full, inc = steps["full"], steps["incremental"]
    assert layout.synthetic_bytes >= 0.95 * USED
    for step in (full, inc):
        assert step.read_bytes is not None
        assert layout.synthetic_bytes <= step.read_bytes <= 1.05 * layout.synthetic_bytes + 128 * MiB
    data = full.result["data_bytes"]
    assert isinstance(data, int) and layout.synthetic_bytes <= data
    # Compressible and incompressible blocks mixed: zstd has real work, and wins something.
    assert 0.4 * data < full.stored_bytes < 0.9 * data
    changed = inc.result["data_bytes"]
    assert isinstance(changed, int) and 0.004 * data < changed < 0.02 * data
    assert steps["merge"].image_bytes > 0.95 * full.image_bytes


@pytest.mark.parametrize("name", ["full", "incremental", "verify", "restore", "merge"])
def test_peak_rss_of_each_run(scale: Scale, name: str) -> None:
    step = scale[1][name]
    assert 20 * MiB < step.peak_rss <= RSS_BOUND, f"{name}: peak RSS {step.peak_rss / MiB:.0f} MiB"


def test_incremental_manifest_grows_with_its_own_data(scale: Scale) -> None:
    inc = scale[1]["incremental"]
    assert inc.manifest_bytes <= 64 * 1024 + 0.005 * inc.stored_bytes, \
        f"manifest {inc.manifest_bytes} bytes for {inc.stored_bytes} bytes stored"
