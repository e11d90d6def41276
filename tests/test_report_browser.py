"""The HTML conformance report in a real browser: Debian's Chromium, headless, loaded from ``file://``.

The page must load with no console message and no script error (read two ways: Chromium's console log on
stderr, and the page's own sentinel in the DOM), its script must have run (``data-ready="1"``), and a
screenshot is kept beside the report. A page with a deliberate error is loaded through the same checks first,
so that the checks are known to catch one.

Chromium is installed by the fixture when missing (``apt-get install -y chromium``, after ``apt-get update``
if the package is not known yet); the test is skipped only where that is impossible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from opus_dred.conformance._report import write_reports
from opus_dred.conformance._runner import ImplRun, Outcome, RunReport

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = _find_chromium()
    if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, env=env, timeout=900)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, env=env, timeout=900)
        exe = _find_chromium()
    if exe is None:
        pytest.skip("chromium is not installed and cannot be installed here")
    return exe


def _load(exe: str, page: Path, profile: Path, *extra: str) -> tuple[str, str]:
    """(stdout, stderr) of headless Chromium on ``page``."""
    r = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    return r.stdout, r.stderr


def _console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def _report() -> RunReport:
    """A report with every status, partial passes, feature figures and per-frame errors."""
    import math

    def oc(impl, handler, name, status, **kw):
        return Outcome(impl=impl, case=f"libopus-1.6.1/{handler}/grid/{name}", profile="libopus-1.6.1",
                       handler=handler, suite="grid", name=name, status=status, **kw)

    ok_err = [0.0] * 24
    bad_err = [0.01 * (1 + math.sin(i / 3)) for i in range(24)]
    bad_err[9] = 0.9
    m_ok = {"total": 0.0, "max": 0.0, "pitch": 0.0, "frames": 24, "pitch_frames": 10, "thresholds": [0.5, 0.15, 0.02],
            "passed": True, "bit_exact": True, "max_abs": 0.0}
    m_bad = {**m_ok, "total": 0.71, "max": 0.42, "pitch": None, "passed": False, "bit_exact": False}
    ref = ImplRun("reference", "opus-dred reference", [
        oc("reference", "dred_features", "a", "pass", metric=m_ok, frame_error=ok_err),
        oc("reference", "packet", "b", "pass"),
        oc("reference", "receiver", "c", "pass")], seconds=3.2)
    lib = ImplRun("libopus-1.6.1", "libopus 1.6.1 (default), DRED version 12", [
        oc("libopus-1.6.1", "dred_features", "a", "fail", field="features", offset=9, metric=m_bad,
           frame_error=bad_err, detail="features at offset 9: expected within dred_compare thresholds <0.5>"),
        oc("libopus-1.6.1", "packet", "b", "pass", partial=("packet.mode",), detail="partial: not reported: packet.mode"),
        oc("libopus-1.6.1", "receiver", "c", "skip", detail="libopus has no receiver object")], seconds=0.4)
    ext = ImplRun("external:example", "external", [
        oc("external:example", "dred_features", "a", "error", detail="no answer within 2 s"),
        oc("external:example", "packet", "b", "pass"),
        oc("external:example", "receiver", "c", "skip")], seconds=2.0)
    return RunReport(suite="/tmp/suite <&> \"quoted\"", impls=[ref, lib, ext], profiles=["libopus-1.6.1"],
                     handlers=["dred_features", "packet", "receiver"], cases=3, generator="opus-dred test",
                     created="2026-01-01T00:00:00Z")


def test_checks_catch_a_broken_page(chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body data-ready="0"><script>'
                    'window.addEventListener("error",function(e){document.body.setAttribute("data-js-errors",e.message)});'
                    'notDefinedAnywhere();</script></body></html>')
    dom, err = _load(chromium, page, tmp_path / "profile", "--dump-dom")
    assert _console_lines(err), err[-2000:]
    assert "data-js-errors" in dom


def test_report_loads_without_errors_and_screenshot(chromium, tmp_path):
    out = tmp_path / "report"
    paths = write_reports(_report(), out)
    html_page = paths["html"]
    text = html_page.read_text()
    assert "<script src" not in text and "<link" not in text and "http://" not in text.replace(
        "http://www.w3.org/2000/svg", "")  # self-contained
    dom, err = _load(chromium, html_page, tmp_path / "p1", "--dump-dom")
    assert not _console_lines(err), _console_lines(err)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-ready="1"' in body and "data-js-errors" not in body, body
    assert "3 of 9 shown" not in dom and "9 of 9 shown" in dom  # the filter script ran over every row
    assert dom.count("<svg") >= 3  # matrix, error per frame, dred_compare bars
    # the per-handler counts: libopus' packet pass is partial, the reference's feature comparison bit-exact
    assert "Pass, partial and bit-exact per handler" in dom
    assert "1 pass · 1 partial" in dom and "bit-exact 1/1" in dom.replace("\n", " ")
    shot = out / "report.png"
    _, err2 = _load(chromium, html_page, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1280,2000")
    assert not _console_lines(err2)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) == (1280, 2000)
