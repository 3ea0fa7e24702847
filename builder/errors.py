"""Errors of the image builder, under the engine's single error root.

They keep the generic exit code 2 (no class-level ``exit_code``): the builder is a developer tool, and
the numbered codes are the rescue CLI's public API (README table), which build failures are not part of.
"""

from __future__ import annotations

from core.errors import Error


class BuildError(Error):
    """Build failed: {detail}"""


class MissingTool(BuildError):
    """{tool} is missing: install the Debian package {package} (apt-get install {package})"""
