"""Shared fixtures: the repo root on sys.path, isolated data dirs, settings and services."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):  # the repo, and shared test helpers (tests/apprunner.py)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from config import enforce_offline_env  # noqa: E402

enforce_offline_env()


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


@pytest.fixture(scope="session")
def embedded_hf_data_dir(tmp_path_factory):
    """A data dir holding the embedded model's dequantized HF checkpoint, built once per run."""
    from models.embedded import ensure_embedded_hf
    data = tmp_path_factory.mktemp("embedded-hf-data")
    ensure_embedded_hf(data)
    return data

