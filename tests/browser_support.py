"""Debian's Chromium driven by Playwright: the one way the browser tests start a browser."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# As root and on a machine with no network: no sandbox, no background connections.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-quic",
               "--no-first-run"]


def require_browser():
    """Skip the calling test module unless Chromium and Playwright are both here; returns
    playwright.sync_api."""
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
                    allow_module_level=True)
    return pytest.importorskip(
        "playwright.sync_api", reason="needs Playwright for Python (pip install playwright)")
