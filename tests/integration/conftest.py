"""Integration tier: real servers, started once per session where they are slow to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.embedded_sftp import embedded_sftp
from tests.fixtures.sshd import sshd

__all__ = ["embedded_sftp", "sshd"]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this folder's.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)
