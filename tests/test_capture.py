"""Packet captures of RTP carrying Opus (bitstream._rtp, _capture, _capture_inspect).

A real capture is made here: libopus' encoder (with DRED) through the oracle, RTP packets (RFC 3550, RFC 7587,
RED per RFC 2198) sent over loopback UDP with Python's socket, recorded by ``tcpdump``. That capture and small
synthesised ones (every link type, pcap and pcapng, both byte orders, CSRCs, extensions, padding) are read, and
every RTP field (SSRC, sequence number, timestamp, payload type, marker, arrival time) is checked against
Wireshark's ``tshark`` reading the same file; every DRED payload against libopus' ``opus_dred_parse``. Then the
bad captures: truncated, snaplen-cut, non-Opus payloads, unknown payload types, several SSRCs, reordering,
duplicates and wrap-around.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from opus_dred.bitstream._capture import (
    LINK_ETHERNET,
    LINK_NULL,
    LINK_RAW,
    LINK_SLL,
    CaptureOptions,
    read_capture,
    read_records,
    require_opus,
    udp_frame,
    write_capture,
)
from opus_dred.bitstream._capture_inspect import inspect_capture, scalar_dred_reader
from opus_dred.bitstream._dred import read_dred_payload
from opus_dred.bitstream._errors import TruncatedError
from opus_dred.bitstream._extensions import find_dred_extension
from opus_dred.bitstream._formats import detect_format, load_input, read_input, write_opus_demo_bit
from opus_dred.bitstream._profiles import get_profile
from opus_dred.bitstream._rtp import (
    CaptureError,
    DuplicateWarning,
    NotOpusError,
    PayloadTypeError,
    PayloadWarning,
    RedError,
    ReorderWarning,
    RtpError,
    SnaplenWarning,
    StreamSelectionError,
    StreamsWarning,
    WrapWarning,
    analyze_stream,
    interarrival_jitter,
    parse_red,
    parse_rtp,
    parse_sdp,
    write_red,
    write_rtp,
)

PORT = 47_611
SSRC_A, SSRC_B = 0x1BADB002, 0x00C0FFEE
PT_OPUS, PT_RED, PT_OPUS_B = 111, 63, 96
T0 = 1_790_000_000_123_456_000  # ns


@functools.cache
def _oracle(name):
    from opus_dred.libopus._oracle import Oracle

    return Oracle.for_build(name)


@functools.cache
def _packets(build: str, seconds: float = 2.0) -> tuple[bytes, ...]:
    """libopus' packets of real speech, 16 kHz, 20 ms, 32 kb/s, DRED 1 s, loss 20 % (so DRED is sent)."""
    from opus_dred.speech._corpus import load_clip

    x = load_clip(None, rate=16000)[: int(16000 * seconds)]
    enc = _oracle(build).encode(x, fs=16000, bitrate=32000, frame_ms=20, complexity=10, dred_duration=100,
                                loss_perc=20, application="voip")
    return tuple(e.data for e in enc)


# -- tshark, the independent reader --------------------------------------------------------------------------
#: what tshark is asked for, per frame (several values of one field: comma-separated, in packet order)
TSHARK_FIELDS = ("frame.number", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport",
                 "rtp.version", "rtp.padding", "rtp.ext", "rtp.cc", "rtp.csrc.item", "rtp.marker", "rtp.p_type",
                 "rtp.seq", "rtp.timestamp", "rtp.ssrc", "rtp.ext.profile", "rtp.ext.len", "rtp.padding.count",
                 "frame.time_epoch", "rtp.payload", "rtp.timestamp-offset", "rtp.block-length")


def _tshark(path, ports=(PORT,), red_pt=PT_RED) -> dict[int, dict]:
    """``frame.number -> RTP fields`` as tshark reads the capture (the port decoded as RTP, ``red_pt`` as RFC 2198):
    addresses and ports, version, padding/extension flags, CSRC count and list, marker, payload type, sequence
    number, timestamp, SSRC, extension profile and length (words), padding length, arrival, the payload, and for
    RED each block's payload type, timestamp offset, length and data."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark (Debian package tshark) is not installed")
    cmd = ["tshark", "-r", str(path)]
    for p in ports:
        cmd += ["-d", f"udp.port=={p},rtp"]
    cmd += ["-d", f"rtp.pt=={red_pt},rtp_rfc2198", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        v = dict(zip(TSHARK_FIELDS, line.split("|")))
        if not v.get("rtp.ssrc"):
            continue

        def ints(name, base=10):
            return [int(x, base) for x in v[name].split(",") if x]

        pts = ints("rtp.p_type")
        pay = [bytes.fromhex(x) for x in v["rtp.payload"].split(",")]
        row = {"src": f"{v['ip.src'] or v['ipv6.src']}:{v['udp.srcport']}",
               "dst": f"{v['ip.dst'] or v['ipv6.dst']}:{v['udp.dstport']}", "version": int(v["rtp.version"]),
               "padding": v["rtp.padding"] in ("1", "True"), "extension": v["rtp.ext"] in ("1", "True"),
               "csrc_count": int(v["rtp.cc"]), "csrc": ints("rtp.csrc.item", 16), "marker": v["rtp.marker"] in ("1", "True"),
               "pt": pts[0], "seq": int(v["rtp.seq"]), "timestamp": int(v["rtp.timestamp"]),
               "ssrc": int(v["rtp.ssrc"], 16), "ext_profile": int(v["rtp.ext.profile"], 16) if v["rtp.ext.profile"] else None,
               "ext_words": int(v["rtp.ext.len"]) if v["rtp.ext.len"] else 0,
               "padding_length": int(v["rtp.padding.count"] or 0), "arrival": v["frame.time_epoch"], "payload": pay[0]}
        if pts[0] == red_pt:  # RFC 2198: the blocks' payload types, offsets, lengths and data
            row["red"] = {"pts": pts[1:], "ts_offsets": ints("rtp.timestamp-offset"),
                          "lengths": ints("rtp.block-length"), "data": pay[1:]}
        out[int(v["frame.number"])] = row
    return out


def _ours(cap, data: bytes, red_pt=PT_RED) -> dict[int, dict]:
    """The same fields as :func:`_tshark` from :func:`read_capture` (its columns, its payloads) and our RTP and
    RED parsers on the bytes at each packet's offset."""
    out = {}
    for i in range(len(cap.rtp)):
        r = cap.rtp.packet(i)
        end = r["offset"] + int(cap.rtp.header_length[i]) + r["payload_length"] + r["padding_length"]
        h, payload = parse_rtp(data[r["offset"]:end])
        assert payload == cap.rtp.payloads[i]
        row = {"src": r["src"], "dst": r["dst"], "version": h.version, "padding": h.padding, "extension": h.extension,
               "csrc_count": r["csrc_count"], "csrc": list(h.csrc), "marker": r["marker"], "pt": r["pt"],
               "seq": r["seq"], "timestamp": r["timestamp"], "ssrc": r["ssrc"], "ext_profile": r["ext_profile"],
               "ext_words": h.ext_length // 4, "padding_length": r["padding_length"], "arrival": r["arrival"],
               "payload": cap.rtp.payloads[i]}
        if r["pt"] == red_pt:
            blocks = parse_red(payload)
            row["red"] = {"pts": [b.pt for b in blocks], "ts_offsets": [b.ts_offset for b in blocks[:-1]],
                          "lengths": [len(b.data) for b in blocks[:-1]], "data": [b.data for b in blocks]}
        out[r["frame"]] = row
    return out


def _same_as_tshark(path, cap, ports=(PORT,)) -> tuple[int, int]:
    """Every RTP field of every packet equal to tshark's: ``(packets, (field, packet) pairs)`` compared."""
    data = path.read_bytes()
    theirs, ours = _tshark(path, ports), _ours(cap, data)
    assert ours.keys() == theirs.keys()
    for frame in ours:
        assert ours[frame] == theirs[frame], frame
    return len(ours), sum(len(r) + (len(r["red"]) - 1 if "red" in r else 0) for r in ours.values())


# -- what the tests send ---------------------------------------------------------------------------------------


def _plan(n: int):
    """Which of ``n`` packets go out, in which order: losses (runs of 1, 2 and 3), a swap, a duplicate."""
    order = [k for k in range(n) if k not in (7, 20, 21, 40, 41, 42)]
    i = order.index(30)
    order[i], order[i + 1] = order[i + 1], order[i]
    order.insert(order.index(50) + 1, 50)
    return order


def _stream_a(build="libopus-1.5.2"):
    """Stream A: plain Opus, sequence numbers and timestamps wrapping around during the stream."""
    pk = _packets(build)
    seq0, ts0 = 65536 - 20, (1 << 32) - 960 * 30
    return [(k, write_rtp(pk[k], pt=PT_OPUS, seq=seq0 + k, timestamp=ts0 + 960 * k, ssrc=SSRC_A, marker=k == 0))
            for k in _plan(len(pk))], pk, seq0, ts0


def _stream_b(build="libopus-1.6.1"):
    """Stream B: RED (pt 63) over Opus (pt 96) as WebRTC sends it, the previous packet as the redundant block."""
    pk = _packets(build)
    out = []
    for k in range(0, len(pk), 2):  # every other packet: a loss pattern of its own (and fewer packets)
        red = [(PT_OPUS_B, 960, pk[k - 1])] if k else []
        out.append((k, write_rtp(write_red(red, PT_OPUS_B, pk[k]), pt=PT_RED, seq=1000 + k, timestamp=4800 * k // 5,
                                 ssrc=SSRC_B)))
    return out, pk


# -- the loopback capture ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """A capture tcpdump records on the loopback interface while stream A (and B, on the same port) are sent."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump (Debian package tcpdump) is not installed")
    if os.geteuid() != 0:
        pytest.skip("capturing on the loopback interface needs root (tcpdump -i lo)")
    path = tmp_path_factory.mktemp("loopback") / "call.pcap"
    a, pk_a, seq0, ts0 = _stream_a()
    b, pk_b = _stream_b()
    proc = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "0", "-w", str(path),
                             "udp", "port", str(PORT)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        seen = b""
        while b"listening on" not in seen:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.skip(f"tcpdump did not start: {seen.decode(errors='replace')}")
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ib = 0
            for j, (_, pkt) in enumerate(a):
                s.sendto(pkt, ("127.0.0.1", PORT))
                if j % 2 == 0 and ib < len(b):
                    s.sendto(b[ib][1], ("127.0.0.1", PORT))
                    ib += 1
                time.sleep(0.001)
            for _, pkt in b[ib:]:
                s.sendto(pkt, ("127.0.0.1", PORT))
                time.sleep(0.001)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    data = path.read_bytes()
    assert len(data) > 24, "tcpdump listened on the loopback interface but recorded nothing"
    return {"path": path, "data": data, "a": a, "pk_a": pk_a, "b": b, "pk_b": pk_b, "seq0": seq0, "ts0": ts0}


def test_loopback_rtp_fields_equal_tshark(loopback):
    cap = read_capture(loopback["data"])
    n, pairs = _same_as_tshark(loopback["path"], cap)
    assert n == len(loopback["a"]) + len(loopback["b"])
    print(f"tshark agrees on {pairs} (field, packet) pairs of {n} packets, {len(loopback['data'])} bytes")
    assert cap.fmt == "pcap" and cap.error is None


def test_loopback_streams_are_found_and_their_packets_are_what_was_sent(loopback):
    cap = read_capture(loopback["data"])
    by = {o.ssrc: o for o in cap.opus}
    assert set(by) == {SSRC_A, SSRC_B}
    a, b = by[SSRC_A], by[SSRC_B]
    assert (a.pt, a.red_pt) == (PT_OPUS, None) and (b.pt, b.red_pt) == (PT_OPUS_B, PT_RED)
    # stream A, arrival order: exactly the packets sent, in the order sent, extended across the wrap-around
    assert [a.opus[i] for i in range(len(a))] == [loopback["pk_a"][k] for k, _ in loopback["a"]]
    assert a.ext_seq.tolist() == [loopback["seq0"] + k for k, _ in loopback["a"]]
    assert a.ext_ts.tolist() == [loopback["ts0"] + 960 * k for k, _ in loopback["a"]]
    assert sorted(a.lost.tolist()) == [loopback["seq0"] + k for k in (7, 20, 21, 40, 41, 42)]
    assert int(a.duplicate.sum()) == 1 and int(a.reordered.sum()) == 1
    # stream B: the RED primary is the packet, the redundant block the one before it
    assert b.opus == [loopback["pk_b"][k] for k, _ in loopback["b"]]
    assert all(r == ([(960, loopback["pk_b"][k - 1])] if k else []) for (k, _), r in zip(loopback["b"], b.redundant))
    kinds = {type(w) for w in cap.warnings}
    assert {StreamsWarning, DuplicateWarning, ReorderWarning, WrapWarning} <= kinds


@pytest.mark.parametrize("which", ["a", "b"])
def test_loopback_dred_payloads_equal_libopus(loopback, which):
    """Every packet's DRED, as inspect reads it from the capture, against opus_dred_parse on the same bytes."""
    build = {"a": "libopus-1.5.2", "b": "libopus-1.6.1"}[which]
    ssrc = {"a": SSRC_A, "b": SSRC_B}[which]
    prof = get_profile(build)
    o = _oracle(build)
    res = inspect_capture(loopback["data"], options=CaptureOptions(ssrc=ssrc), detail=0)
    (st,) = res.streams
    assert st.profile == build
    d = st.dred
    checked = 0
    for k, pkt in enumerate(st.stream.opus):
        ref = o.dred_parse(pkt, sampling_rate=48000, defer_processing=True)
        try:
            assert bool(d.found[k]) == (ref.nb_latents > 0)
            if not d.found[k]:
                continue
            assert int(d.nb_latents[k]) == ref.nb_latents and int(d.dred_offset[k]) == ref.dred_offset
            assert int(d.available_48k()[k]) == ref.ret
            loc = find_dred_extension(pkt, prof)
            p = read_dred_payload(loc.payload, prof, dred_frame_offset=loc.dred_frame_offset)
            np.testing.assert_array_equal(ref.state[: prof.state_dim], p.state)
            np.testing.assert_array_equal(ref.latents[:, : prof.latent_dim], p.latents[:, : prof.latent_dim])
            h = ref.header
            if h is not None:
                assert (h.q0, h.dQ, h.qmax) == (int(d.q0[k]), int(d.dq[k]), int(d.qmax[k]))
            checked += 1
        finally:
            ref.close()
    assert checked >= 0.9 * len(st.stream.opus)


def test_loopback_loss_runs_and_the_dred_after_them(loopback):
    res = inspect_capture(loopback["data"], options=CaptureOptions(ssrc=SSRC_A), detail=0)
    r = res.streams[0].report
    runs = [(x["first_seq"], x["count"]) for x in r["loss_runs"]]
    seq0 = loopback["seq0"]
    assert runs == [((seq0 + k) & 0xFFFF, n) for k, n in ((7, 1), (20, 2), (40, 3))]
    o = _oracle("libopus-1.5.2")
    for x in r["loss_runs"]:
        assert x["lost_ms"] == 20.0 * x["count"]
        nxt = loopback["pk_a"][(x["next_seq"] - seq0) & 0xFFFF]
        with o.dred_parse(nxt, sampling_rate=48000, defer_processing=True) as ref:
            assert x["dred_available_ms"] * 48 == ref.ret
        want = "full" if ref.ret >= x["lost_ms"] * 48 else ("partial" if ref.ret > 0 else "none")
        assert x["covered"] == want
    assert r["lost"] == 6 and r["duplicates"] == 1 and r["reordered"] == 1 and r["seq_wraps"] == 1


def _cli(*args):
    from typer.testing import CliRunner

    from opus_dred.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_inspect_command_agrees_with_tshark_and_libopus(loopback):
    """``opus-dred inspect --json`` on the loopback capture: every packet's RTP fields as tshark reads them, its
    Opus packet (at the offset and length inspect gives) the payload tshark shows (RED's primary block for
    stream B), and its DRED (found, latents, offset, q0/dQ/qmax, samples available) what opus_dred_parse says."""
    r = _cli("inspect", loopback["path"], "--json", "--limit", "-1", "--port", PORT)
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    theirs = _tshark(loopback["path"])
    assert sorted(it["rtp"]["frame"] for it in j["items"]) == sorted(theirs)
    profiles = {st["ssrc"]: st["profile"] for st in j["streams"]}
    assert profiles == {SSRC_A: "libopus-1.5.2", SSRC_B: "libopus-1.6.1"}
    data = loopback["data"]
    dred = 0
    for it in j["items"]:
        rtp, t = it["rtp"], theirs[it["rtp"]["frame"]]
        for k in ("src", "dst", "ssrc", "seq", "timestamp", "pt", "marker", "csrc_count", "ext_profile",
                  "padding_length", "arrival"):
            assert rtp[k] == t[k], (rtp["frame"], k)
        assert rtp["payload_length"] == len(t["payload"])
        pkt = data[it["offset"]:it["offset"] + it["length"]]
        assert pkt == (t["red"]["data"][-1] if "red" in t else t["payload"])
        d = it["dred"] or {}
        with _oracle(profiles[rtp["ssrc"]]).dred_parse(pkt, sampling_rate=48000, defer_processing=True) as ref:
            assert bool(d.get("found")) == (ref.nb_latents > 0), rtp["frame"]
            if not d.get("found"):
                continue
            assert (d["nb_latents"], d["dred_offset"], round(d["available_ms"] * 48)) == \
                (ref.nb_latents, ref.dred_offset, ref.ret)
            if ref.header is not None:
                assert (d["q0"], d["dq"], d["qmax"]) == (ref.header.q0, ref.header.dQ, ref.header.qmax)
            dred += 1
    assert dred >= 0.9 * len(j["items"])


# -- synthesised captures, every link type and file layout ---------------------------------------------------
def _rtp_set(pk, *, ssrc=0xABCDEF01, csrc=(), ext=None, padding=0, pt=PT_OPUS):
    return [write_rtp(p, pt=pt, seq=500 + k, timestamp=123456 + 960 * k, ssrc=ssrc, marker=k == 0, csrc=csrc,
                      ext_profile=None if ext is None else 0xBEDE, ext_data=ext or b"", padding=padding)
            for k, p in enumerate(pk)]


LAYOUTS = [
    ("pcap", LINK_ETHERNET, {}, "127.0.0.1"),
    ("pcap", LINK_ETHERNET, {"nano": True, "little": False}, "127.0.0.1"),
    ("pcap", LINK_SLL, {}, "10.0.0.1"),
    ("pcap", LINK_NULL, {}, "127.0.0.1"),
    ("pcap", LINK_RAW, {}, "::1"),
    ("pcapng", LINK_ETHERNET, {}, "fe80::1"),
    ("pcapng", LINK_ETHERNET, {"nano": True, "little": False}, "192.168.1.2"),
]


@pytest.mark.parametrize("fmt, link, kw, addr", LAYOUTS)
def test_synthesised_layouts_equal_tshark(tmp_path, fmt, link, kw, addr):
    pk = _packets("libopus-1.6.1")[:30]
    rtp = _rtp_set(pk, csrc=(1, 2), ext=b"\x10\xaa", padding=3)
    frames = [(T0 + 20_000_000 * k + 7 * k, udp_frame(r, src=addr, dst=addr, sport=PORT + 1, dport=PORT,
                                                         linktype=link, vlan=5 if k % 2 else None))
              for k, r in enumerate(rtp)]
    data = write_capture(frames, fmt=fmt, linktype=link, **kw)
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(data)
    assert detect_format(data, path.name) == fmt
    cap = read_capture(data)
    assert _same_as_tshark(path, cap)[0] == 30
    (o,) = cap.opus
    assert o.opus == list(pk)  # the payload between CSRCs + extension and the padding is the Opus packet
    unit = 1 if kw.get("nano") else 1000
    assert o.arrival_ns.tolist() == [(T0 + 20_000_000 * k + 7 * k) // unit * unit for k in range(30)]


def test_rtp_header_fields_round_trip():
    pkt = write_rtp(b"\x01\x02", pt=96, seq=65535, timestamp=2**32 - 1, ssrc=7, marker=True, csrc=(9,),
                    ext_profile=0x1000, ext_data=b"\x01\x02\x03\x04\x05", padding=4)
    h, payload = parse_rtp(pkt)
    assert (h.pt, h.seq, h.timestamp, h.ssrc, h.marker, h.csrc) == (96, 65535, 2**32 - 1, 7, True, (9,))
    assert (h.ext_profile, h.ext_length, h.padding_length, payload) == (0x1000, 8, 4, b"\x01\x02")


@pytest.mark.parametrize("data, offset", [(b"\x80\x60" + b"\0" * 6, 0), (b"\x40" + b"\0" * 11, 0),
                                          (b"\x82" + b"\0" * 11 + b"\0\0\0\1", 12),
                                          (b"\x90" + b"\0" * 11 + b"\0\0\0\4", 14),
                                          (b"\xa0" + b"\0" * 11 + b"\x05", 12)])
def test_bad_rtp_is_a_typed_error_with_its_offset(data, offset):
    with pytest.raises(RtpError) as e:
        parse_rtp(data, base=100)
    assert e.value.byte_offset == 100 + offset


def test_red_round_trip_and_errors():
    blocks = [(96, 1920, b"old"), (96, 960, b"newer")]
    payload = write_red(blocks, 96, b"primary")
    got = parse_red(payload)
    assert [(b.pt, b.ts_offset, b.data, b.primary) for b in got] == [(96, 1920, b"old", False),
                                                                      (96, 960, b"newer", False),
                                                                      (96, 0, b"primary", True)]
    with pytest.raises(RedError) as e:
        parse_red(payload[:6], base=10)
    assert e.value.byte_offset == 10 + 4


def test_sdp_names_opus_and_red():
    sdp = parse_sdp("v=0\r\nm=audio 5004 RTP/AVP 63 111\r\na=rtpmap:111 opus/48000/2\r\n"
                    "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n")
    assert sdp.opus == {111} and sdp.red == {63: (111, 111)} and sdp.ports == {5004}


def test_jitter_follows_rfc3550():
    """J += (|D| - J)/16: one transit change of D timestamp units after a steady start gives D/16."""
    ts = np.arange(5) * 960
    arr = (np.arange(5) * 20_000_000).astype(np.int64)
    arr[3] += 1_000_000  # 1 ms late = 48 timestamp units
    j = interarrival_jitter(ts, arr)
    assert j[:3].tolist() == [0.0, 0.0, 0.0]
    assert j[3] == pytest.approx(48 / 16) and j[4] == pytest.approx(48 / 16 + (48 - 48 / 16) / 16)


def test_sequence_and_timestamp_wrap_around():
    seq = np.array([65534, 65535, 0, 2, 1, 1, 3], np.int64)
    ts = (np.array([65534, 65535, 65536, 65538, 65537, 65537, 65539], np.int64) * 960) & 0xFFFFFFFF
    a = analyze_stream(seq, ts, np.arange(7, dtype=np.int64))
    assert a.ext_seq.tolist() == [65534, 65535, 65536, 65538, 65537, 65537, 65539]
    assert a.lost.tolist() == [] and a.duplicate.tolist() == [False] * 5 + [True, False]
    assert a.reordered.tolist() == [False, False, False, False, True, False, False]
    assert (np.diff(a.ext_ts[[0, 1, 2, 4, 3, 6]]) == 960).all()  # monotonic across the 32-bit wrap


# -- bad captures ------------------------------------------------------------------------------------------------
@functools.cache
def _clean_capture(n: int = 40) -> bytes:
    pk = _packets("libopus-1.5.2")[:n]
    return write_capture([(T0 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk))])


def test_truncated_capture_keeps_the_records_before_the_break():
    data = _clean_capture()
    rf = read_records(data)
    cut = rf.records[25].offset + 10  # inside the 26th record's header + data
    cap = read_capture(data[:cut])
    assert isinstance(cap.error, TruncatedError) and cap.error.byte_offset == rf.records[25].offset
    assert len(cap.selected) == 25
    contents = read_input(load_input_bytes(data[:cut]))
    assert contents.error.to_dict() == cap.error.to_dict() and len([p for p in contents.items if p]) == 25


def load_input_bytes(data: bytes):
    from opus_dred.bitstream._formats import StreamInput

    return StreamInput("x.pcap", data, None)


def test_no_capture_and_cut_file_header_are_capture_errors():
    with pytest.raises(CaptureError) as e:
        read_records(b"\xa1\xb2\xc3\xd4\x00")
    assert e.value.byte_offset == 0
    with pytest.raises(CaptureError):
        read_records(b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00")


def test_snaplen_cut_packets_are_counted_not_lost():
    pk = _packets("libopus-1.5.2")[:20]
    frames = []
    for k, r in enumerate(_rtp_set(pk)):
        f = udp_frame(r)
        frames.append((T0 + 20_000_000 * k, f[:60], len(f)) if k in (5, 6) else (T0 + 20_000_000 * k, f))
    cap = read_capture(write_capture(frames, snaplen=60))
    w = [x for x in cap.warnings if isinstance(x, SnaplenWarning)]
    assert len(w) == 1 and w[0].count == 2
    assert w[0].byte_offset == int(cap.rtp.offset[5])
    o = cap.selected
    assert len(o.lost) == 0 and o.opus[5] is None and o.opus[6] is None and o.opus[7] == pk[7]
    assert o.loss_flags().tolist() == [0] * 5 + [1, 1] + [0] * 13


def test_non_opus_payloads_and_unknown_payload_type():
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, 160, dtype=np.uint8).tobytes() for _ in range(30)]
    pcmu = write_capture([(T0 + 20_000_000 * k, udp_frame(write_rtp(p, pt=0, seq=k, timestamp=160 * k, ssrc=5)))
                          for k, p in enumerate(noise)])
    cap = read_capture(pcmu)
    assert cap.opus == [] and "static" in cap.ssrcs[0].reason
    with pytest.raises(NotOpusError) as e:
        require_opus(cap)
    assert e.value.byte_offset == int(cap.rtp.offset[0])
    dyn = write_capture([(T0 + 20_000_000 * k, udp_frame(write_rtp(p, pt=100, seq=k, timestamp=960 * k, ssrc=5)))
                         for k, p in enumerate(noise)])
    assert read_capture(dyn).opus == []
    with pytest.raises(NotOpusError):
        read_capture(dyn, CaptureOptions(pt=100))
    with pytest.raises(PayloadTypeError) as e:
        read_capture(_clean_capture(), CaptureOptions(pt=99))
    assert "111" in e.value.message
    with pytest.raises(PayloadTypeError):
        read_capture(_clean_capture(), CaptureOptions(sdp=parse_sdp("a=rtpmap:98 opus/48000/2")))


def test_a_packet_of_the_stream_that_is_no_opus_packet_is_a_warning_and_a_loss():
    pk = list(_packets("libopus-1.5.2")[:30])
    pk[12] = b"\x03"  # code 3 with no frame-count byte: RFC 6716 R6
    data = write_capture([(T0 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk))])
    contents = read_input(load_input_bytes(data))
    (w,) = [x for x in contents.warnings if isinstance(x, PayloadWarning)]
    assert contents.items[12] == b"" and w.byte_offset == contents.stream.opus_offset[12] + 1
    res = inspect_capture(data, detail=0)
    (w2,) = [x for x in res.warnings if x["error"] == "PayloadWarning"]
    assert w2 == w.to_dict()


def test_several_ssrcs_are_listed_and_selectable():
    pk = _packets("libopus-1.5.2")[:30]
    frames = [(T0 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk, ssrc=1))]
    frames += [(T0 + 10_000_000 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk[:10], ssrc=2))]
    frames.sort()
    data = write_capture(frames)
    cap = read_capture(data)
    assert [o.ssrc for o in cap.opus] == [1, 2] and cap.selected.ssrc == 1
    (w,) = [x for x in cap.warnings if isinstance(x, StreamsWarning)]
    assert "--ssrc" in w.message and w.byte_offset == cap.opus[1].opus_offset[0] - 12
    assert read_capture(data, CaptureOptions(ssrc=2)).selected.ssrc == 2
    with pytest.raises(StreamSelectionError):
        read_capture(data, CaptureOptions(ssrc=3))
    res = inspect_capture(data, detail=0)
    assert [s.report["ssrc"] for s in res.streams] == [1, 2]


def test_scalar_reader_is_what_inspect_packet_reads():
    """The light rows' DRED (scalar_dred_reader) equal the detailed rows' (inspect_packet) packet by packet."""
    res = inspect_capture(_clean_capture(), detail=-1)
    (st,) = res.streams
    rows = list(st.rows())
    for (it, _), row in zip(st.items, rows):
        d = it.dred
        if row["dred"] is None:
            assert not (d and d.get("found"))
            continue
        for k in ("q0", "dq", "qmax", "dred_offset", "nb_latents", "coverage_ms", "available_ms", "payload_bytes"):
            assert row["dred"][k] == d[k]
    assert st.dred.found.sum() > 30
    assert scalar_dred_reader([None], get_profile("libopus-1.5.2")).found.tolist() == [False]


@pytest.mark.parametrize("native", [True, False])
def test_batched_reader_is_the_scalar_reader(native):
    """The batched DRED reader inspect runs (accel's native kernel in one call, or chunks through accel's numpy
    lanes) gives the columns of the scalar reader, packet by packet, lost packets and chunk edges included."""
    from opus_dred.accel import _native
    from opus_dred.cli._inspect import batched_dred_reader

    if native and _native.library() is None:
        pytest.skip("the native reader does not build here")
    pk = [p if k % 9 else None for k, p in enumerate(_packets("libopus-1.6.1"))]
    prof = get_profile("libopus-1.6.1")
    a, b = batched_dred_reader(map, chunk=7, native=native)(pk, prof), scalar_dred_reader(pk, prof)
    for col in ("found", "q0", "dq", "qmax", "dred_offset", "nb_latents", "payload_offset", "payload_bytes",
                "end_tell"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)
    assert a.found.sum() > 0.8 * len(pk)


# -- bad inputs through every command ----------------------------------------------------------------------
def _bad_inputs() -> dict[str, tuple[str, bytes, tuple, str]]:
    """``name -> (file name, bytes, extra options, what inspect reports: the error or warning class)``."""
    clean = _clean_capture()
    rf = read_records(clean)
    ng = write_capture([(T0 + 20_000_000 * k, udp_frame(r)) for k, r in
                        enumerate(_rtp_set(_packets("libopus-1.5.2")[:30]))], fmt="pcapng")
    ng_rf = read_records(ng)
    pk = _packets("libopus-1.5.2")
    snap = []
    for k, r in enumerate(_rtp_set(pk[:20])):
        f = udp_frame(r)
        snap.append((T0 + 20_000_000 * k, f[:60], len(f)) if k in (5, 6) else (T0 + 20_000_000 * k, f))
    rng = np.random.default_rng(1)
    pcmu = [(T0 + 20_000_000 * k, udp_frame(write_rtp(rng.integers(0, 256, 160, dtype=np.uint8).tobytes(), pt=0,
                                                       seq=k, timestamp=160 * k, ssrc=5))) for k in range(30)]
    two = [(T0 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk[:30], ssrc=1))]
    two += [(T0 + 10_000_000 + 20_000_000 * k, udp_frame(r)) for k, r in enumerate(_rtp_set(pk[:10], ssrc=2))]
    a, _, _, _ = _stream_a()
    bad_pkt = list(pk[:30])
    bad_pkt[12] = b"\x03"
    bit = write_opus_demo_bit([(p, 0) for p in pk[:5]])
    return {
        "truncated pcap": ("cut.pcap", clean[:rf.records[25].offset + 10], (), "TruncatedError"),
        "truncated pcapng": ("cut.pcapng", ng[:ng_rf.records[20].offset + 30], (), "TruncatedError"),
        "cut file header": ("head.pcap", clean[:20], (), "CaptureError"),
        "snaplen": ("snap.pcap", write_capture(snap, snaplen=60), (), "SnaplenWarning"),
        "not opus": ("pcmu.pcap", write_capture(pcmu), (), "NotOpusError"),
        "unknown payload type": ("clean.pcap", clean, ("--pt", 99), "PayloadTypeError"),
        "several ssrcs": ("two.pcap", write_capture(sorted(two)), (), "StreamsWarning"),
        "no such ssrc": ("two.pcap", write_capture(sorted(two)), ("--ssrc", 3), "StreamSelectionError"),
        "reordered, duplicated, wrapped": ("a.pcap", write_capture([(T0 + 20_000_000 * j, udp_frame(r)) for j, (_, r)
                                                                    in enumerate(a)]), (), "ReorderWarning"),
        "a packet that is no opus": ("badpkt.pcap", write_capture([(T0 + 20_000_000 * k, udp_frame(r)) for k, r in
                                                                   enumerate(_rtp_set(bad_pkt))]), (),
                                     "PayloadWarning"),
        "truncated bit": ("cut.bit", bit[:-5], (), "TruncatedError"),
    }


def _lines(text: str, prefix: str) -> list[str]:
    return [ln[len(prefix):] for ln in text.splitlines() if ln.startswith(prefix)]


def _flat(text: str) -> str:
    """Text with rich's panel borders and line folding taken out (a usage error's box)."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").replace("─", " ").split())


@pytest.mark.parametrize("case", ["truncated pcap", "truncated pcapng", "cut file header", "snaplen", "not opus",
                          "unknown payload type", "several ssrcs", "no such ssrc", "reordered, duplicated, wrapped",
                          "a packet that is no opus", "truncated bit"])
def test_bad_input_is_worded_alike_by_every_command(tmp_path, case):
    """Each bad capture (and a truncated ``.bit``) through ``inspect``, ``decode``, ``conform`` and ``simulate
    --trace``: the error (class, message, byte offset, rule) or the warnings ``inspect --json`` reports are the
    lines the others print, a file that breaks off has the packets before the break used, and a typed error
    stops every command with a non-zero status."""
    from opus_dred.cli._inspect import format_error

    name, data, opts, kind = _bad_inputs()[case]
    path = tmp_path / name
    path.write_bytes(data)
    r = _cli("inspect", path, "--json", "--limit", "-1", *opts)
    j = json.loads(r.stdout)
    warns = {format_error(w) for w in j.get("warnings", [])}
    if kind.endswith("Warning"):
        assert r.exit_code == 0 and j["error"] is None and kind in {w["error"] for w in j["warnings"]}
        assert all(w["byte_offset"] is not None for w in j.get("warnings", []))
    else:
        assert j["error"]["error"] == kind and j["error"]["byte_offset"] is not None
    err = format_error(j["error"]) if j["error"] else None
    truncated = kind == "TruncatedError"
    if truncated:
        assert r.exit_code == 0 and j["items"], "the packets before the break are inspected"
    elif err is not None:
        assert r.exit_code != 0 and not j["items"]
    if j.get("header") and j["header"].get("selected_ssrc") is not None:  # decode's stream, in sequence order
        rows = [p for p in j["packets"] if p["ssrc"] == j["header"]["selected_ssrc"] and not p["duplicate"]]
        seqs = [p["ext_seq"] for p in rows]
        expect = (sum(1 for p in rows if p["usable"] and p["dred"]), max(seqs) - min(seqs) + 1)
    else:
        expect = (sum(1 for it in j["items"] if (it["dred"] or {}).get("found")), len(j["items"]))

    # decode: the warnings, then the error (after the packets before the break are decoded)
    d = _cli("decode", path, "--max-ms", 40, *opts)
    assert set(_lines(d.stderr, "warning: ")) == warns
    if err is not None:
        assert d.exit_code == 2 and _lines(d.stderr, "error: ") == [err]
    else:
        assert d.exit_code == 0, d.output
    if truncated or err is None:
        assert f": profile libopus-1.5.2, {expect[0]} DRED packets of {expect[1]}," in d.stdout

    # conform: the stream's DRED packets become cases, the same lines on stderr
    c = _cli("conform", "--impl", "reference", "--suite", path, "--max-packets", 1, *opts)
    if err is None or truncated:
        assert c.exit_code == 0, c.output
        assert set(_lines(c.stderr, "warning: ")) == warns | ({f"{err} (the packets before it are used)"}
                                                               if truncated else set())
    else:
        assert c.exit_code == 2 and _lines(c.stderr, "error: ") == [err]

    # simulate --trace (captures only): the capture read before anything else, its lines alike
    if name.endswith(".bit"):
        return
    s = _cli("simulate", "--trace", path, "no-such-clip", *opts)
    assert s.exit_code == 2
    if err is None or truncated:
        assert set(_lines(s.stderr, "warning: ")) == warns | ({f"{err} (the packets before it are used)"}
                                                               if truncated else set())
        assert "no-such-clip" in s.stderr  # it got as far as the speech
    else:
        assert _flat(err) in _flat(s.stderr)


def test_simulate_trace_takes_the_capture_losses_and_arrivals(loopback):
    """``simulate --trace``'s reading of the loopback capture: a flag per sequence number, set where a packet was
    not sent, and the arrival delays the capture measured (the swapped packets arrive after their neighbours)."""
    from opus_dred.cli._simulate import capture_trace

    spec, arrivals = capture_trace(loopback["path"], CaptureOptions(ssrc=SSRC_A))
    n = len(loopback["pk_a"])
    assert spec.flags == tuple(int(k in (7, 20, 21, 40, 41, 42)) for k in range(n))
    sent = {k for k, _ in loopback["a"]}
    cap = read_capture(loopback["data"], CaptureOptions(ssrc=SSRC_A))
    first = {int(s) - loopback["seq0"]: int(t) for s, t, dup in zip(cap.selected.ext_seq, cap.selected.arrival_ns,
                                                                     cap.selected.duplicate) if not dup}
    t0 = min(first.values())
    d = np.array([(first[k] - t0) / 1e6 - 20.0 * k if k in sent else np.nan for k in range(n)])
    d -= np.nanmin(d)
    np.testing.assert_allclose(np.asarray(arrivals.delays_ms)[list(sorted(sent))], d[sorted(sent)], atol=1e-9)


def test_encode_writes_ogg_opus_that_opusinfo_and_opusdec_accept(tmp_path):
    """``opus-dred encode -o x.opus``: opusinfo reads it without a warning (pre-skip 312, the input rate, the
    input's length), opusdec gives back exactly the input's samples, in time with it (pre-skip right), our
    Ogg reader gives each page's granule position as the 48 kHz samples so far (the last trimmed to the
    input), and each packet's DRED is what opus_dred_parse finds."""
    from opus_dred.bitstream._formats import read_ogg_opus
    from opus_dred.bitstream._packet import parse_packet
    from opus_dred.bitstream._wav import read_wav, write_wav
    from opus_dred.speech._corpus import load_clip

    if not (shutil.which("opusinfo") and shutil.which("opusdec")):
        pytest.skip("opus-tools (Debian package opus-tools: opusinfo, opusdec) is not installed")
    n = 16000 * 3 // 10 + 77  # not a whole number of 20 ms frames: the last granule is trimmed
    pcm = np.asarray(load_clip(None, rate=16000)[8000:8000 + n], np.int16)
    write_wav(tmp_path / "in.wav", pcm, 16000)
    r = _cli("encode", tmp_path / "in.wav", "-o", tmp_path / "x.opus", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["container"] == "ogg"
    info = subprocess.run(["opusinfo", str(tmp_path / "x.opus")], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and "WARNING" not in info.stdout + info.stderr, info.stdout + info.stderr
    assert "Pre-skip: 312" in info.stdout and "Original sample rate: 16000 Hz" in info.stdout
    assert f"Playback length: 0m:{n * 1000 // 16000 / 1000:06.3f}s" in info.stdout  # opusinfo truncates to ms
    dec = subprocess.run(["opusdec", "--rate", "16000", str(tmp_path / "x.opus"), str(tmp_path / "out.wav")],
                         capture_output=True, timeout=60)
    assert dec.returncode == 0, dec.stderr
    out = read_wav(tmp_path / "out.wav").pcm.reshape(-1).astype(np.float64)
    assert len(out) == n
    a = pcm.astype(np.float64)
    lags = range(-40, 41)
    xc = [np.dot(a[1000:n - 100], out[1000 + k:n - 100 + k]) for k in lags]
    # in time: SILK moves the correlation peak by a sample or two; a pre-skip missing either part of libopus'
    # look-ahead (2.5 ms, 4 ms) would put it 40 or 64 samples off
    assert abs(lags[int(np.argmax(xc))]) <= 3
    ogg = read_ogg_opus((tmp_path / "x.opus").read_bytes())
    assert (ogg.head.pre_skip, ogg.head.input_sample_rate, ogg.head.channels) == (312, 16000, 1)
    ends = np.cumsum([parse_packet(p).duration_48k for p in ogg.packets])
    assert ogg.granules[:-1] == ends[:-1].tolist() and ogg.granules[-1] == 312 + 3 * n <= ends[-1]
    o = _oracle("libopus-1.6.1")
    found = 0
    for p in ogg.packets:
        with o.dred_parse(p, sampling_rate=48000, defer_processing=True) as ref:
            loc = find_dred_extension(p, get_profile("libopus-1.6.1"))
            assert (loc is not None) == (ref.nb_latents > 0)
            found += loc is not None
    assert found >= len(ogg.packets) - 1


def test_decode_reads_a_folder_of_packets_as_the_same_bit_file(tmp_path):
    """``decode FOLDER`` (``*.bin`` raw packets, in name order) writes the features ``decode`` writes for the
    same packets in an opus_demo ``.bit``, and ``decode packet.bin`` those of its one packet."""
    pk = _packets("libopus-1.6.1")[10:14]
    folder = tmp_path / "pk"
    folder.mkdir()
    for k, p in enumerate(pk):
        (folder / f"{k:03d}.bin").write_bytes(p)
    (tmp_path / "same.bit").write_bytes(write_opus_demo_bit([(p, 0) for p in pk]))
    for src, out in ((folder, "a.f32"), (tmp_path / "same.bit", "b.f32"), (folder / "000.bin", "c.f32")):
        r = _cli("decode", src, "-o", tmp_path / out, "--max-ms", 40)
        assert r.exit_code == 0, r.output
    a, b, c = (np.fromfile(tmp_path / f, "<f4") for f in ("a.f32", "b.f32", "c.f32"))
    assert len(a) and np.array_equal(a, b) and np.array_equal(c, a[:len(c)]) and 0 < len(c) < len(a)


def _scan(data: bytes):
    from opus_dred.bitstream._capture import scan_capture

    r = scan_capture(data, read_records(data).records)
    return ([getattr(r, c).tolist() for c in ("record", "offset", "arrival_ns", "flow", "pt", "marker", "seq",
                                              "timestamp", "ssrc", "header_length", "padding_length", "csrc_count",
                                              "ext_profile", "cut")],
            r.payloads, r.flows, r.udp, [(e.to_dict(), i) for e, i in r.bad])


@pytest.mark.parametrize("fmt, link, kw, addr", LAYOUTS)
def test_records_read_by_layout_are_what_dpkt_reads(monkeypatch, fmt, link, kw, addr):
    """The RTP scan reads records laid out like one dpkt has read without dpkt (``_Shape``): on every layout,
    with header bytes of some records changed at random (lengths, flags, protocol, addresses, link headers),
    its packets are those dpkt's reading of every record gives."""
    import opus_dred.bitstream._capture as C

    pk = _packets("libopus-1.6.1")[:60]
    rng = np.random.default_rng(link + len(fmt))
    frames = []
    for k, r in enumerate(_rtp_set(pk, csrc=(3,))):
        f = bytearray(udp_frame(r, src=addr, dst=addr, sport=PORT + k % 2, dport=PORT, linktype=link,
                                vlan=7 if k % 5 == 0 else None))
        if k % 4 == 3:  # a header byte (link, IP or UDP) changed
            i = int(rng.integers(0, min(len(f), 70)))
            f[i] = int(rng.integers(0, 256)) if k % 8 == 3 else (f[i] ^ 1 << int(rng.integers(0, 8)))
        frames.append((T0 + 20_000_000 * k, bytes(f)))
    data = write_capture(frames, fmt=fmt, linktype=link, **kw)
    fast = _scan(data)
    monkeypatch.setattr(C, "MAX_SHAPES", 0)
    assert fast == _scan(data)
    assert fast[3] >= 30  # most records are still UDP


def test_bench_inspect_reports_its_figures():
    """``opus-dred bench inspect`` on a small capture: the figures it reports (not their speed) are those of the
    capture it made (packets, losses, DRED packets as libopus counts them), the ratio is libopus' time over the
    command's, and the CPU is this machine's."""
    from opus_dred.bench._machine import cpu_model
    from opus_dred.bench._inspect import loss_plan, speech_packets

    r = _cli("bench", "inspect", "--packets", 300, "--repeats", 1, "--json")
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    order, dup = loss_plan(300)
    assert (j["packets"], j["lost"], j["cpu"], j["repeats"]) == (300, 300 - len(set(order.tolist())), cpu_model(), 1)
    speech = speech_packets("libopus-1.6.1")
    o = _oracle("libopus-1.6.1")
    with_dred = 0
    for k in order.tolist():  # in arrival order: the duplicated packet counts twice (it arrived twice)
        with o.dred_parse(speech[k % len(speech)], sampling_rate=48000, defer_processing=True) as ref:
            with_dred += ref.nb_latents > 0
    assert j["dred_packets"] == with_dred and order.tolist().count(dup) == 2
    assert j["ratio"] == pytest.approx(j["libopus_s"] / j["command_s"])
    assert j["packets_per_s"] == pytest.approx(300 / j["command_s"]) and j["media_s"] == 6.0
    assert 0 < j["startup_s"] and 0 < j["command_cpu_s"] and len(j["command_runs_s"]) == 1
    assert set(j["stages_s"]) >= {"records", "RTP scan"}
    assert sum(k.startswith("DRED reading (accel's ") for k in j["stages_s"]) == 1
    assert j["under_target"] == (j["command_s"] < 10.0)
