"""Real-browser end-to-end tests: their ``e2e`` marker (pytest.ini runs --strict-markers), and a flag
on a failed test so its fixtures can keep a screenshot of every open page."""
from __future__ import annotations

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the running app in a real browser (Playwright + chromium)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.e2e_failed = True
    return report
