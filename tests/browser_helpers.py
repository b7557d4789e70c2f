"""The system's Chromium for the browser tests (Playwright drives it; no browser download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None. In CI (CI=true) they must run: `.ci/run` installs both."""
    if os.environ.get("CI") == "true":
        return None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright)"
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (apt-get install chromium)"
    return None
