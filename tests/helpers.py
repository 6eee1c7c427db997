"""Small helpers shared by the tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytest

SHARPEYES = [sys.executable, "-m", "sharpeyes"]


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    """Poll until ``predicate`` returns something truthy; fail with a clear message."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s (last value: {last!r})")
