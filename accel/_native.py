"""A native kernel for reading DRED in bulk: the lean packet framing and ``dred_ec_decode``, one packet after
another in C, called through ctypes.

It computes what :func:`opus_dred.accel._bitstream.locate_dred_payloads`' lean path and
:func:`opus_dred.accel._bitstream.read_dred_payloads` compute with numpy lanes (RFC 6716 §4.1 range decoding as
``celt/entdec.c`` does it, ``celt/laplace.c:ec_laplace_decode_p0``, ``dnn/dred_decoder.c:dred_ec_decode`` with its
chunk-loop stop rule, the float32 dequantisation of ``dred_decode_latents``), written from those Python readers;
``tests/test_batch_reader.py`` checks it field by field against them and the scalar reader.

The source below is compiled once per source text with the system C compiler (``$CC``, else ``cc``) into the
cache (``$OPUS_DRED_CACHE``, else the user cache directory ``opus-dred``) under ``accel/``; no compiler, or
``OPUS_DRED_NATIVE=0``, and :func:`library` is ``None`` (the callers then use numpy). ctypes releases the GIL
during a call, so :func:`read_dred` splits a large batch over threads (:func:`threads_for`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SOURCE = r"""
#include <stdint.h>
#include <string.h>

typedef struct {
    const uint8_t *buf;
    uint32_t storage, offs, end_offs, rng, val, rem;
    int32_t nbits_total;
} rd_t;

static inline uint32_t rd_byte(rd_t *d) {
    return d->offs < d->storage ? d->buf[d->offs++] : 0u;
}

/* RFC 6716 4.1.2.1: shift bytes in while the range is at most 2^23 */
static inline void rd_norm(rd_t *d) {
    while (d->rng <= (1u << 23)) {
        uint32_t b, sym;
        d->nbits_total += 8;
        d->rng <<= 8;
        b = rd_byte(d);
        sym = ((d->rem << 8) | b) >> 1;
        d->rem = b;
        d->val = ((d->val << 8) + (255u & ~sym)) & 0x7FFFFFFFu;
    }
}

static inline void rd_init(rd_t *d, const uint8_t *buf, uint32_t n) {
    d->buf = buf; d->storage = n; d->offs = 0; d->end_offs = 0;
    d->nbits_total = 9; d->rng = 128;
    d->rem = rd_byte(d);
    d->val = d->rng - 1 - (d->rem >> 1);
    rd_norm(d);
}

static inline int32_t rd_tell(const rd_t *d) {
    return d->nbits_total - (32 - __builtin_clz(d->rng));
}

/* ec_decode then ec_dec_update with fl, fh chosen by the caller through sym_fn: here the common
   "uint below 256" case (one symbol of ft) */
static inline uint32_t rd_uint_small(rd_t *d, uint32_t ft) {
    uint32_t ext = d->rng / ft, s = d->val / (ext ? ext : 1), fs, sub;
    fs = ft - (s + 1 < ft ? s + 1 : ft);
    sub = ext * (ft - (fs + 1));
    d->val -= sub;
    d->rng = fs > 0 ? ext * 1u : d->rng - sub;
    rd_norm(d);
    return fs;
}

/* ec_dec_icdf with 15-bit tables of K entries (non-increasing, ending in 0): the symbol is the count of
   entries whose product with rng >> 15 exceeds val, counted without branches */
#define RD_ICDF15(NAME, K)                                              \
static inline int NAME(rd_t *d, const int32_t *icdf) {                  \
    uint32_t r = d->rng >> 15, v = d->val, s, t;                        \
    int ret = 0;                                                        \
    for (int j = 0; j < K - 1; j++) ret += v < r * (uint32_t)icdf[j];   \
    s = r * (uint32_t)icdf[ret];                                        \
    t = ret ? r * (uint32_t)icdf[ret - 1] : d->rng;                     \
    d->val = v - s;                                                     \
    d->rng = t - s;                                                     \
    return ret;                                                         \
}
RD_ICDF15(rd_icdf15_3, 3)
RD_ICDF15(rd_icdf15_8, 8)

static inline int rd_laplace(rd_t *d, const int32_t *sign, const int32_t *mag, int *bad) {
    int s = rd_icdf15_3(d, sign), value, v;
    if (d->rng == 0) { *bad = 1; return 0; }
    rd_norm(d);
    if (s == 0) return 0;
    value = 1;
    do {
        v = rd_icdf15_8(d, mag);
        if (d->rng == 0) { *bad = 1; return 0; }
        rd_norm(d);
        value += v;
    } while (v == 7);
    return s == 2 ? -value : value;
}

/* status per packet: 0 read, 1 the range collapsed (a zero-probability table entry) */
/* packets i0..i1-1 of ntot; the latent arrays are laid out chunk-major ([max_lat][ntot][...]), so that the
   pages of chunks no packet reached are never touched */
void dred_read(const uint8_t *data, const int64_t *start, const int32_t *len, int32_t i0, int32_t i1, int32_t ntot,
               const int32_t *st_sign, const int32_t *st_mag, const uint8_t *st_skip, const float *st_div,
               const int32_t *la_sign, const int32_t *la_mag, const uint8_t *la_skip, const float *la_div,
               int32_t state_dim, int32_t latent_dim, int32_t max_lat, int32_t stride, int32_t n_chunks,
               int32_t has_q, const int32_t *dq_table,
               int64_t *q0_o, int64_t *dq_o, int64_t *qmax_o, uint8_t *ext_o, int64_t *code_o, int64_t *off_o,
               int32_t *state_q, float *state, int32_t *lat_q, int64_t *q_levels, float *lat,
               int64_t *nb_o, int64_t *tell_o, int32_t *status)
{
    for (int32_t i = i0; i < i1; i++) {
        rd_t d;
        int bad = 0;
        uint32_t q0, dq, qmax = 15, code = 0, off;
        int32_t num_bits = 8 * len[i], nb = 0;
        rd_init(&d, data + start[i], (uint32_t)len[i]);
        q0 = rd_uint_small(&d, 16);
        dq = rd_uint_small(&d, 8);
        ext_o[i] = rd_uint_small(&d, 2) != 0;
        if (ext_o[i]) code = rd_uint_small(&d, 256);
        off = rd_uint_small(&d, 32);
        if (q0 < 14 && dq > 0) {  /* qmax coded: ft = 2 nvals, symbols below nvals mean 15 */
            uint32_t nvals = 15 - (q0 + 1), ft = 2 * nvals;
            uint32_t ext = d.rng / ft, s = d.val / (ext ? ext : 1), fs, fl, fh, sub;
            fs = ft - (s + 1 < ft ? s + 1 : ft);
            if (fs >= nvals) { qmax = q0 + (fs - nvals) + 1; fl = fs; fh = fs + 1; }
            else { fl = 0; fh = nvals; }
            sub = ext * (ft - fh);
            d.val -= sub;
            d.rng = fl > 0 ? ext * (fh - fl) : d.rng - sub;
            rd_norm(&d);
        }
        {
            const int64_t base = (int64_t)q0 * state_dim;
            int32_t *sq = state_q + (int64_t)i * state_dim;
            float *sv = state + (int64_t)i * state_dim;
            for (int32_t j = 0; j < state_dim && !bad; j++) {
                int v = 0;
                if (!st_skip[base + j]) v = rd_laplace(&d, st_sign + 3 * (base + j), st_mag + 8 * (base + j), &bad);
                sq[j] = v;
                sv[j] = (float)v * 256.0f / st_div[base + j];
            }
        }
        for (int32_t k = 0; k < n_chunks && !bad; k++) {
            uint32_t ql;
            int64_t base;
            int32_t *lq;
            float *lv;
            if (num_bits - rd_tell(&d) <= 7) break;
            ql = q0 + ((uint32_t)dq_table[dq] * (uint32_t)k + 8) / 16;
            if (ql > qmax) ql = qmax;
            base = (int64_t)ql * latent_dim;
            lq = lat_q + ((int64_t)k * ntot + i) * latent_dim;
            lv = lat + ((int64_t)k * ntot + i) * stride;
            for (int32_t j = 0; j < latent_dim && !bad; j++) {
                int v = 0;
                if (!la_skip[base + j]) v = rd_laplace(&d, la_sign + 3 * (base + j), la_mag + 8 * (base + j), &bad);
                lq[j] = v;
                lv[j] = (float)v * 256.0f / la_div[base + j];
            }
            if (has_q) lv[latent_dim] = (float)ql * 0.125f - 1.0f;
            q_levels[(int64_t)k * ntot + i] = ql;
            nb++;
        }
        q0_o[i] = q0; dq_o[i] = dq; qmax_o[i] = qmax; code_o[i] = code; off_o[i] = off;
        nb_o[i] = nb; tell_o[i] = rd_tell(&d); status[i] = bad;
    }
}

/* The lean framing of accel._bitstream._lean_locate, then dred_find_payload's version test: the start of
   the DRED payload (after 'D' and the version byte) from the packet's start, or -1 */
void dred_locate(const uint8_t *data, const int64_t *start, const int32_t *len, int32_t n,
                 const int32_t *frame48k, int32_t head, int32_t version, int32_t *out)
{
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *p = data + start[i];
        int32_t m = len[i], pos = 2, remaining, pad = 0, count, last, s;
        uint8_t cb;
        out[i] = -1;
        if (m < 2 || (p[0] & 3) != 3) continue;
        cb = p[1];
        count = cb & 63;
        if (!(cb & 64) || count == 0 || count * frame48k[p[0]] > 5760) continue;
        remaining = m - 2;
        for (;;) {
            int32_t b, add;
            if (remaining <= 0) { remaining = -1; break; }
            b = p[pos++];
            remaining--;
            add = b == 255 ? 254 : b;
            remaining -= add;
            pad += add;
            if (b != 255) break;
        }
        if (remaining < 0) continue;
        if (cb & 128) {
            if (count != 1) continue;
            last = remaining;
        } else {
            last = remaining / count;
            if (last * count != remaining) continue;
        }
        if (last > 1275 || pad < 1) continue;
        s = m - pad;
        if (p[s] != head) continue;
        s += 1;
        /* the extension's data: more than the two prefix bytes, 'D' first, then the version */
        if (m - s > 2 && p[s] == 'D' && p[s + 1] == version) out[i] = s + 2;
    }
}
"""

_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_TRIED = False


def _cache() -> Path:
    env = os.environ.get("OPUS_DRED_CACHE")
    if env:
        return Path(env).expanduser() / "accel"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("opus-dred")) / "accel"


def _build() -> ctypes.CDLL | None:
    tag = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    d = _cache()
    so = d / f"dred_reader-{tag}.so"
    if not so.exists():
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            src = Path(tmp) / "dred_reader.c"
            src.write_text(SOURCE)
            out = Path(tmp) / "dred_reader.so"
            cc = os.environ.get("CC", "cc")
            r = subprocess.run([cc, "-O2", "-std=c99", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(out), str(src)],
                               capture_output=True)
            if r.returncode != 0:
                return None
            os.replace(out, so)  # atomic: concurrent builders (worker processes) agree on one file
    lib = ctypes.CDLL(str(so))
    P = ctypes.c_void_p
    i32 = ctypes.c_int32
    lib.dred_read.argtypes = [P, P, P, i32, i32, i32] + [P] * 8 + [i32] * 6 + [P] + [P] * 14
    lib.dred_read.restype = None
    lib.dred_locate.argtypes = [P, P, P, i32, P, i32, i32, P]
    lib.dred_locate.restype = None
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernel, or ``None`` where it cannot be built (or ``OPUS_DRED_NATIVE=0``)."""
    global _LIB, _TRIED
    if os.environ.get("OPUS_DRED_NATIVE", "1") == "0":
        return None
    if not _TRIED:
        with _LOCK:
            if not _TRIED:
                try:
                    _LIB = _build()
                except OSError:
                    _LIB = None
                _TRIED = True
    return _LIB


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_for(n: int) -> int:
    """Threads a batch of ``n`` packets is split over: one per core, at least 8192 packets each (on 2 cores
    shared with other jobs, smaller batches ran no faster on two threads than on one)."""
    return max(1, min(cores(), n // 8192))


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    b = np.linspace(0, n, parts + 1).astype(int)
    return [(int(b[i]), int(b[i + 1])) for i in range(parts) if b[i + 1] > b[i]]


def _run(fn, n: int) -> None:
    parts = _split(n, threads_for(n))
    if len(parts) <= 1:
        for a, b in parts:
            fn(a, b)
        return
    with ThreadPoolExecutor(len(parts)) as ex:
        list(ex.map(lambda ab: fn(*ab), parts))


def joined(chunks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``chunks`` (bytes-like) as one uint8 buffer, their starts [N] int64 and lengths [N] int32."""
    lens = np.fromiter(map(len, chunks), np.int32, len(chunks))
    starts = np.zeros(len(chunks), np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    data = np.frombuffer(b"".join(chunks) + b"\0", np.uint8)
    return data, starts, lens


def locate(lib, data: np.ndarray, starts: np.ndarray, lens: np.ndarray, frame48k: np.ndarray, head: int,
           version: int) -> np.ndarray:
    """The lean path's payload start per packet (from the packet's start; -1 where it does not answer)."""
    n = len(lens)
    out = np.empty(n, np.int32)
    lib.dred_locate(_ptr(data), _ptr(starts), _ptr(lens), n, _ptr(frame48k), head, version, _ptr(out))
    return out


def read_dred(lib, data: np.ndarray, starts: np.ndarray, lens: np.ndarray, tabs, *, state_dim: int,
              latent_dim: int, max_lat: int, stride: int, n_chunks: int, has_q: bool, dq_table: np.ndarray) -> dict:
    """``dred_ec_decode`` and the dequantisation of N payloads at ``data[starts[i]:starts[i] + lens[i]]``;
    ``tabs``: the int32/uint8/float32 tables of :func:`opus_dred.accel._bitstream.native_tables`."""
    n = len(lens)
    i64 = lambda: np.empty(n, np.int64)  # noqa: E731
    o = {"q0": i64(), "dQ": i64(), "qmax": i64(), "extended_offset": np.empty(n, np.bool_), "code": i64(),
         "offset": i64(), "state_q": np.empty((n, state_dim), np.int32),
         "state": np.empty((n, state_dim), np.float32), "latents_q": np.zeros((max_lat, n, latent_dim), np.int32),
         "q_levels": np.zeros((max_lat, n), np.int64), "latents": np.zeros((max_lat, n, stride), np.float32),
         "nb_latents": i64(), "end_tell": i64(), "status": np.empty(n, np.int32)}
    order = ("q0", "dQ", "qmax", "extended_offset", "code", "offset", "state_q", "state", "latents_q", "q_levels",
             "latents", "nb_latents", "end_tell", "status")
    t = [_ptr(x) for x in tabs]
    dq = np.ascontiguousarray(dq_table, np.int32)
    outs = [_ptr(o[k]) for k in order]

    def part(a: int, b: int) -> None:
        lib.dred_read(_ptr(data), _ptr(starts), _ptr(lens), a, b, n, *t, state_dim, latent_dim, max_lat, stride,
                      n_chunks, int(has_q), _ptr(dq), *outs)

    _run(part, n)
    for k in ("latents_q", "q_levels", "latents"):  # [N, max_lat, ...] views
        o[k] = np.swapaxes(o[k], 0, 1)
    return o
