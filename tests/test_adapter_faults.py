"""The external adapter at a bounded cost per fault.

Each test writes a tiny adapter program into ``tmp_path`` that misbehaves in one way (hangs at hello or in a
case, crashes, prints garbage, answers another id, floods its standard output or error, exits early with
status 0, answers ``failure``, speaks another protocol version, is too slow for the run deadline) and runs a
few cases through :class:`ExternalAdapter` with short timeouts: every run ends within a bound on its wall time
(asserted), with the expected statuses, the reason in each outcome's detail, and the tail of the program's
standard error where it wrote one. The canonical suite against an adapter that hangs at hello finishes in
seconds with short timeouts.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opus_dred.conformance._adapters import STDERR_TAIL_BYTES, STDERR_TAIL_LINES, ExternalAdapter
from opus_dred.conformance._runner import run_suite
from opus_dred.vectors._format import Case

#: the one answer every good case gets, and the expected value it is compared with
GOOD = {"packet": {"toc": 8}}

ADAPTER = '''
import json, os, sys, threading, time
def out(o):
    sys.stdout.write((o if isinstance(o, str) else json.dumps(o)) + "\\n")
    sys.stdout.flush()
def err(s):
    sys.stderr.write(s + "\\n")
    sys.stderr.flush()
n = 0
for line in sys.stdin:
    req = json.loads(line)
    rid = req["id"]
    if req.get("type") == "hello":
{hello}
        out({{"id": 0, "protocol": "opus-dred-conform/1", "name": "t", "handlers": None, "profiles": None}})
        continue
    n += 1
    case = req["case"]
    err("decoding " + case)
{case}
    out({{"id": rid, "result": {good}}})
'''


def _adapter(tmp_path: Path, *, hello: str = "pass", case: str = "pass", **limits) -> ExternalAdapter:
    src = ADAPTER.format(hello=textwrap.indent(textwrap.dedent(hello), " " * 8),
                         case=textwrap.indent(textwrap.dedent(case), " " * 4), good=json.dumps(GOOD))
    prog = tmp_path / "adapter.py"
    prog.write_text(src)
    opts = dict(timeout=0.5, start_timeout=1.0, kill_grace=0.2)
    opts.update(limits)
    return ExternalAdapter([sys.executable, str(prog)], **opts)


def _cases(*names: str) -> list[Case]:
    return [Case(profile="libopus-1.6.1", handler="packet", suite="faults", name=n, inputs={"packet": b"\x08"},
                 parameters={}, expected=dict(GOOD)) for n in names]


def _run(tmp_path: Path, names: list[str], bound: float, **kw):
    """(outcomes, adapter) of a run of cases ``names``, asserting it ended within ``bound`` seconds."""
    t0 = time.monotonic()
    ext = _adapter(tmp_path, **kw)
    rep = run_suite([ext], _cases(*names))
    took = time.monotonic() - t0
    assert took < bound, f"the run took {took:.1f} s"
    return rep.impls[0].outcomes, ext


def _statuses(outcomes) -> list[str]:
    return [o.status for o in outcomes]


# ---------------------------------------------------------------------------------------------------------
# hangs


def test_hang_at_hello_marks_the_adapter_broken_after_three_starts(tmp_path):
    names = [f"c{i}" for i in range(40)]
    o, ext = _run(tmp_path, names, 10.0, hello='err("loading the models"); time.sleep(600)')
    assert _statuses(o) == ["error"] * 40
    for x in o[:3]:  # the constructor's start, then two restarts: three start timeouts
        assert x.detail.startswith("hello: no answer within 1 s"), x.detail
        assert "loading the models" in x.stderr_tail
    assert "marked broken: 3 consecutive start failures or timeouts" in o[2].detail
    assert all(x.detail.startswith("not run: the adapter is broken: 3 consecutive") for x in o[3:])
    assert ext._starts == 3  # the remaining cases were answered without starting the program again
    assert ext.broken is not None and ext.capabilities is None


def test_hang_mid_run_restarts_then_three_timeouts_in_a_row_are_broken(tmp_path):
    names = ["c0", "hang1", "c2", "hang3", "hang4", "hang5", "c6", "c7"]
    o, _ = _run(tmp_path, names, 12.0, case='if "hang" in case: time.sleep(600)')
    assert _statuses(o) == ["pass", "error", "pass", "error", "error", "error", "error", "error"], [x.detail for x in o]
    assert o[1].detail == "no answer within 0.5 s" and "decoding libopus-1.6.1/packet/faults/hang1" in o[1].stderr_tail
    assert "marked broken: 3 consecutive start failures or timeouts (last: no answer within 0.5 s)" in o[5].detail
    assert all(x.detail.startswith("not run: the adapter is broken") for x in o[6:])


def test_a_hang_that_does_not_read_its_input_cannot_block_the_runner(tmp_path):
    """A request larger than a pipe's buffer, to a program that has stopped reading: the write is the
    writer thread's, the timeout holds."""
    names = ["stop0", "c1"]
    t0 = time.monotonic()
    ext = _adapter(tmp_path, case='if "stop" in case: time.sleep(600)')
    big = _cases("big")[0]
    big.inputs = {"packet": b"\x08" * (1 << 20)}
    rep = run_suite([ext], _cases(*names[:1]) + [big] + _cases(*names[1:]))
    assert time.monotonic() - t0 < 8.0
    assert _statuses(rep.impls[0].outcomes) == ["error", "pass", "pass"]


# ---------------------------------------------------------------------------------------------------------
# crashes, garbage, other ids, floods, early exits


def test_crash_is_an_error_with_its_stderr_and_the_next_case_runs(tmp_path):
    o, _ = _run(tmp_path, ["crash0", "c1", "crash2", "c3"], 10.0,
                case='if "crash" in case: err("Traceback: boom in " + case); sys.exit(3)')
    assert _statuses(o) == ["error", "pass", "error", "pass"]
    assert o[0].detail == "process exited (status 3) without answering"
    assert o[0].stderr_tail.splitlines()[-1] == "Traceback: boom in libopus-1.6.1/packet/faults/crash0"
    assert "boom in libopus-1.6.1/packet/faults/crash2" in o[2].stderr_tail


def test_crash_on_every_case_stops_at_the_restart_limit(tmp_path):
    o, _ = _run(tmp_path, [f"c{i}" for i in range(10)], 10.0, case="sys.exit(5)", max_restarts=3)
    assert _statuses(o) == ["error"] * 10
    assert all("exited (status 5)" in x.detail for x in o[:4])  # the first start and 3 restarts
    assert all(x.detail == "not run: the adapter is broken: restarted 3 times (the limit)" for x in o[4:])


def test_garbage_is_an_error_and_the_next_case_runs(tmp_path):
    o, _ = _run(tmp_path, ["junk0", "c1"], 8.0, case='if "junk" in case: out("Segmentation fault? no: debug output")')
    assert _statuses(o) == ["error", "pass"]
    assert o[0].detail.startswith("not JSON: 'Segmentation fault?")


@pytest.mark.parametrize("answer_id, shown", [("rid + 1", "expected id 1"), ("rid - 1", "expected id 1"),
                                              ('"one"', "expected id 1"), ("True", "expected id 1")])
def test_an_answer_with_another_id_is_an_error(tmp_path, answer_id, shown):
    """Out of order (the next request's id, or the previous one's: hello's) or not an id at all."""
    o, _ = _run(tmp_path, ["odd0", "c1"], 8.0,
                case=f'if "odd" in case: out({{"id": {answer_id}, "result": {json.dumps(GOOD)}}}); continue')
    assert _statuses(o) == ["error", "pass"]
    assert o[0].detail.startswith(f"answer for another request ({shown})"), o[0].detail


def test_stdout_flood_of_one_endless_line_is_cut_at_the_line_limit(tmp_path):
    o, _ = _run(tmp_path, ["flood0", "c1"], 10.0, max_line=1 << 20,
                case='if "flood" in case:\n    while True: sys.stdout.write("x" * 65536)')
    assert _statuses(o) == ["error", "pass"]
    assert o[0].detail == f"an answer line longer than {1 << 20} bytes"


def test_stdout_flood_of_blank_lines_times_out(tmp_path):
    o, _ = _run(tmp_path, ["flood0", "c1"], 10.0, case='if "flood" in case:\n    while True: out("")')
    assert _statuses(o) == ["error", "pass"]
    assert o[0].detail == "no answer within 0.5 s"


def test_stderr_flood_never_blocks_and_its_tail_is_bounded(tmp_path):
    hello = '''
    lock = threading.Lock()
    def flood():
        i = 0
        while True:
            with lock:
                sys.stderr.write("noise %d %s\\n" % (i, "y" * 300))
            i += 1
    threading.Thread(target=flood, daemon=True).start()
    '''
    case = '''
    if "last" in case:
        lock.acquire()
        sys.stderr.write("the last words\\n")
        sys.stderr.flush()
        os._exit(4)
    '''
    o, _ = _run(tmp_path, [f"c{i}" for i in range(5)] + ["last5"], 12.0, hello=hello, case=case)
    assert _statuses(o) == ["pass"] * 5 + ["error"]
    tail = o[5].stderr_tail
    assert tail.splitlines()[-1] == "the last words"
    assert len(tail.splitlines()) <= STDERR_TAIL_LINES and len(tail.encode()) <= STDERR_TAIL_BYTES
    assert "noise" in tail


def test_early_exit_with_status_0(tmp_path):
    o, _ = _run(tmp_path, [f"c{i}" for i in range(6)], 10.0, case="if n == 2: sys.exit(0)")
    assert _statuses(o) == ["pass", "error"] * 3
    assert all(x.detail == "process exited (status 0) without answering" for x in o[1::2])


def test_exit_at_hello_with_status_0_is_a_start_failure(tmp_path):
    o, _ = _run(tmp_path, [f"c{i}" for i in range(10)], 8.0, hello='err("no licence"); sys.exit(0)')
    assert _statuses(o) == ["error"] * 10
    assert o[0].detail == "hello: process exited (status 0) without answering" and "no licence" in o[0].stderr_tail
    assert all("not run: the adapter is broken" in x.detail for x in o[3:])


# ---------------------------------------------------------------------------------------------------------
# failure answers and versions


def test_failure_answer_is_an_error_with_stderr_and_the_program_keeps_running(tmp_path):
    case = '''
    if "bad" in case:
        err("cannot open weights.bin")
        out({"id": rid, "failure": "model not loaded (pid %d)" % os.getpid()})
        continue
    '''
    o, _ = _run(tmp_path, ["bad0", "c1", "bad2"], 6.0, case=case)
    assert _statuses(o) == ["error", "pass", "error"]
    assert o[0].detail.startswith("the adapter reported a failure: model not loaded")
    assert o[0].detail == o[2].detail  # same pid: not restarted
    assert "cannot open weights.bin" in o[0].stderr_tail


def test_failure_answer_at_hello_is_broken_at_once(tmp_path):
    o, _ = _run(tmp_path, [f"c{i}" for i in range(5)], 5.0,
                hello='out({"id": 0, "failure": "no GPU"}); continue')
    assert _statuses(o) == ["error"] * 5
    assert o[0].detail == "hello: the adapter reported a failure: no GPU; adapter marked broken"
    assert all(x.detail == "not run: the adapter is broken: hello: the adapter reported a failure: no GPU"
               for x in o[1:])


def test_unknown_major_version_is_refused(tmp_path):
    hello = 'out({"id": 0, "protocol": "opus-dred-conform/2", "version": "2.0", "name": "t"}); continue'
    o, _ = _run(tmp_path, ["c0", "c1"], 5.0, hello=hello)
    assert _statuses(o) == ["error", "error"]
    assert "the adapter speaks protocol version 2.0, this runner 1.1: the major versions differ" in o[0].detail


@pytest.mark.parametrize("answer, version", [('"1.7"', (1, 1)), ('"1.0"', (1, 0)), (None, (1, 0))])
def test_minor_versions_negotiate_down(tmp_path, answer, version):
    extra = "" if answer is None else f', "version": {answer}'
    hello = f'out({{"id": 0, "protocol": "opus-dred-conform/1"{extra}, "name": "t"}}); continue'
    o, ext = _run(tmp_path, ["c0"], 5.0, hello=hello)
    assert _statuses(o) == ["pass"] and ext.version == version


def test_hello_carries_the_runner_version(tmp_path):
    hello = 'err(json.dumps(req)); out("nope")'
    o, _ = _run(tmp_path, ["c0"], 5.0, hello=hello, max_faults=1)
    sent = json.loads(o[0].stderr_tail.splitlines()[0])
    assert sent == {"id": 0, "type": "hello", "protocol": "opus-dred-conform/1", "version": "1.1"}


# ---------------------------------------------------------------------------------------------------------
# the run deadline, the reports, the canonical suite


def test_run_deadline_bounds_a_slow_adapter(tmp_path):
    o, ext = _run(tmp_path, [f"c{i}" for i in range(30)], 6.0, case="time.sleep(0.3)", timeout=5.0, deadline=1.5)
    st = _statuses(o)
    assert st[0] == "pass" and st[-1] == "error" and "fail" not in st
    cut = st.index("error")
    over = "not run: the adapter is broken: the run deadline of 1.5 s has passed"
    # the case under way when the deadline comes has what is left of it (unless none was left)
    assert re.fullmatch(r"no answer within 0(\.\d+)? s \(the rest of the run deadline\); adapter marked broken: "
                        r"the run deadline of 1\.5 s has passed", o[cut].detail) \
        or o[cut].detail == over, o[cut].detail
    assert all(x.detail == over for x in o[cut + 1:])


def test_reports_show_the_stderr_tail(tmp_path):
    from rich.console import Console

    from opus_dred.conformance._report import print_summary, render_html

    ext = _adapter(tmp_path, case='err("<script>alert(1)</script> in " + case); sys.exit(2)')
    rep = run_suite([ext], _cases("c0"))
    js = rep.to_json()["implementations"][0]["outcomes"][0]
    assert js["status"] == "error" and "<script>alert(1)</script> in" in js["stderr_tail"]
    page = render_html(rep)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; in" in page and "<script>alert(1)" not in page
    con = Console(record=True, width=200)
    print_summary(rep, con)
    assert "stderr: <script>alert(1)</script> in libopus-1.6.1/packet/faults/c0" in con.export_text()


def test_canonical_suite_against_a_hang_at_hello_ends_in_seconds(tmp_path):
    from opus_dred.vectors._format import iter_cases, suite_root

    cases = list(iter_cases(suite_root()))
    assert len(cases) >= 772
    prog = tmp_path / "hang.py"
    prog.write_text("import sys, time\nprint('stuck', file=sys.stderr, flush=True)\ntime.sleep(600)\n")
    t0 = time.monotonic()
    ext = ExternalAdapter([sys.executable, str(prog)], timeout=0.5, start_timeout=0.5)
    rep = run_suite([ext], cases)
    assert time.monotonic() - t0 < 10.0
    o = rep.impls[0].outcomes
    assert {x.status for x in o} == {"error"} and len(o) == len(cases)
    assert sum(1 for x in o if x.detail.startswith("hello: no answer")) == 3


def test_conform_command_takes_the_limits(tmp_path):
    from typer.testing import CliRunner

    import typer

    from opus_dred.cli._conform import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer from collapsing the group
    prog = tmp_path / "hang.py"
    prog.write_text("import sys, time\nprint('stuck', file=sys.stderr, flush=True)\ntime.sleep(600)\n")
    t0 = time.monotonic()
    r = CliRunner().invoke(app, ["conform", "--impl", f"external:{sys.executable} {prog}", "--handler", "extensions",
                                 "--start-timeout", "0.3", "--max-faults", "2", "--max-restarts", "5",
                                 "--deadline", "60", "--timeout", "0.3", "--json"])
    assert time.monotonic() - t0 < 15.0
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout[r.stdout.index("{"):])["implementations"][0]["outcomes"]
    assert {o["status"] for o in out} == {"error"}
    assert out[1]["detail"].startswith("hello: no answer within 0.3 s; adapter marked broken: 2 consecutive")
    assert out[0]["stderr_tail"] == "stuck" and out[2]["stderr_tail"] == ""


@pytest.mark.parametrize("bad", ['5', '"packet"', '[1, 2]'])
def test_a_hello_with_malformed_capabilities_is_refused(tmp_path, bad):
    """``handlers`` must be a list of names (or null): a number would crash the run and a string would match
    handler names by substring."""
    hello = f'out({{"id": 0, "protocol": "opus-dred-conform/1", "name": "t", "handlers": {bad}}}); continue'
    o, ext = _run(tmp_path, ["c0", "c1"], 5.0, hello=hello)
    assert _statuses(o) == ["error", "error"]
    assert "'handlers' must be a list of names or null" in o[0].detail
    assert ext.broken is not None
