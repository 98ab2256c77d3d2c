"""Shared by every test: no Ryuk reaper (there is no registry to pull it from), so each
fixture removes what it starts; test containers carry the name prefix ``vmmtest``."""

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is marked after its directory (unit, integration, e2e), so that `-m`
    selects by what a test needs, whatever its file says."""
    for item in items:
        kind = item.path.relative_to(TESTS).parts[0]
        item.add_marker(getattr(pytest.mark, kind))
