"""Headless Chromium (Debian's package: apt-get install -y chromium) opening a page
from file:// with the network off, for the tests of the offline pages (the report,
the asv dashboard). Each call runs the browser in a subprocess with a timeout; the
tests skip when no browser is installed.

"Network off": every request goes to a proxy at 127.0.0.1:9 (the discard port, where
nothing answers) and every host name resolves to nothing, so any http(s) resource the
page asked for would fail to load.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
OFFLINE_FLAGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--host-resolver-rules=MAP * ~NOTFOUND"]


def browser():
    """The path of a headless-capable Chromium; skips the test when there is none."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium installed (apt-get install -y chromium)")


def _run(url, extra, timeout):
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
               "--virtual-time-budget=8000", *OFFLINE_FLAGS, *extra, url]
        env = dict(os.environ, HOME=profile)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env)


def dump_dom(url, timeout=90):
    """The DOM after the page's scripts ran (Chromium's --dump-dom), as text."""
    done = _run(url, ["--dump-dom"], timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url, path, width=1280, height=1000, timeout=90):
    """Writes a PNG screenshot of the page to ``path``; returns its pixels (float RGB
    array, values in [0, 1])."""
    from matplotlib.image import imread

    done = _run(url, [f"--screenshot={path}", f"--window-size={width},{height}"], timeout)
    assert done.returncode == 0 and os.path.exists(path), done.stderr[-2000:]
    return imread(path)[..., :3]
