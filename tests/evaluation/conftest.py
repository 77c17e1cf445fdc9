"""Fixtures for evaluation tests: a private icon cache."""

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    """Render icons into a per-session temporary cache, never into ~/.cache."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
