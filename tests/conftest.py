"""Shared fixtures: the repo root on sys.path, isolated data dirs, settings and services."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def settings(tmp_path):
    from config import load_settings
    return load_settings(["--data-dir", str(tmp_path / "data")], env={})


@pytest.fixture
def store(settings):
    from store.db import Store
    s = Store(settings.db_path)
    yield s
    s.close()
