"""One headless Chromium per test module (browser tests fail, never skip, when it is missing)."""

import pytest

from fra.explore.browser import Browser


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()
