"""Headless Debian Chromium driven by Playwright (never `playwright install`: no downloads)."""

from __future__ import annotations

import shutil

from devkit import SetupError

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SetupError("Debian's chromium is not installed: run the tests through scripts/test.sh")
    return path
