"""The Windows build, once per test session: `rescue-build windows` into the test cache (the frozen folder
is cached by source hash under /var/tmp, so a re-run with unchanged code takes seconds; the pinned
downloads are shared with tests/platform/test_wine.py), and a launcher that runs it under Wine in a
throwaway prefix of this session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import wine
from builder.windows import WindowsBuild, build_windows, launcher
from tests.factory import cache_dir

WINE_CACHE = Path(os.environ.get("RESCUE_WINE_CACHE", "/var/tmp/rescue-wine-cache"))


@pytest.fixture(scope="session")
def windows_build() -> WindowsBuild:
    return build_windows(cache_dir() / "rescue-windows", cache_dir() / "rescue-build-work", WINE_CACHE)


@pytest.fixture(scope="session")
def rescue_exe(windows_build: WindowsBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An executable running the built rescue.exe under Wine, for RESCUE_EXE (tests/images.run_rescue)."""
    base = tmp_path_factory.mktemp("wine-exe")
    prefix = wine.Prefix(base / "prefix", shim=wine.build_prng_shim(WINE_CACHE))
    try:
        yield launcher(windows_build.folder, prefix, base / "rescue-wine")
    finally:
        prefix.close()
