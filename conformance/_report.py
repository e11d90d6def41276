"""Reports of a conformance run: a terminal table (rich), a JSON report and a self-contained HTML report.

The HTML page needs nothing outside itself: styles and a few lines of script are inline, and its plots are
inline SVG written here (no plotting library): the pass matrix (implementation × handler), the ``dred_compare``
figures per case and the error per feature frame of every compared feature set. The page's script records any
JavaScript error in ``<body data-js-errors>`` and marks a clean load with ``data-ready="1"``, which the browser
test reads back from the DOM.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from opus_dred.conformance._runner import STATUSES, RunReport

_COLORS = {"pass": "#2e7d32", "behaviour": "#6a1b9a", "fail": "#c62828", "skip": "#9e9e9e", "error": "#ef6c00"}
#: lines of an error's stderr tail shown under it on the terminal (the JSON and HTML reports hold all of it)
_TERMINAL_STDERR_LINES = 8


def _note(q: dict | None, behaviour: int = 0) -> str:
    """A handler cell's second line: ``p N`` passes that are partial, ``bx N`` feature comparisons bit-exact,
    ``b N`` behaviour differences (a profile rule followed in another variant)."""
    if not q:
        return ""
    parts = [f"p {q['partial']}"] if q["partial"] else []
    if q["compared_features"]:
        parts.append(f"bx {q['bit_exact']}")
    if behaviour:
        parts.append(f"b {behaviour}")
    return "\n".join(parts)


def summary_rows(report: RunReport) -> list[dict[str, Any]]:
    """One row per implementation: counts, the pass/partial/bit-exact counts (``quality``), seconds, the
    handler → 'passed/run' cells and their notes (``p N bx N``)."""
    rows = []
    for r in report.impls:
        m, q = r.matrix(), r.quality()
        cells, notes, behaviour = {}, {}, {}
        for h in report.handlers:
            c = m.get(h, {s: 0 for s in STATUSES})
            run = c["pass"] + c["behaviour"] + c["fail"] + c["error"]
            cells[h] = "skip" if run == 0 else f"{c['pass']}/{run}"
            notes[h] = "" if run == 0 else _note(q.get(h), c["behaviour"])
            behaviour[h] = c["behaviour"]
        rows.append({"impl": r.impl, "counts": r.counts(), "quality": q["total"], "seconds": r.seconds,
                     "cells": cells, "notes": notes, "behaviour": behaviour,
                     "fingerprint": report.fingerprints.get(r.impl)})
    return rows


#: handler column headers of the terminal table, on two lines to keep it within 120 columns
_HEADERS = {"extensions": "exten-\nsions"}


def _note_line(note: str) -> str:
    return f"\n[dim]{note}[/dim]" if note else ""


def print_summary(report: RunReport, console: Any = None, *, failures: int = 20) -> None:
    """The pass table (implementation × handler: passed/run, then partial and bit-exact counts), the numerics
    fingerprints and the first failures, on the terminal."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        c = Console()
        if not c.is_terminal:  # a pipe or a log: wide enough for every handler column
            c = Console(width=max(c.width, 120))
    else:
        c = console
    strict = " · strict" if report.strict else ""
    t = Table(title=f"opus-dred conform: {report.cases} cases ({', '.join(report.profiles)}){strict}",
              box=box.SIMPLE_HEAD, collapse_padding=True, caption="passed/run; under it: p = passes that are "
              "partial (a field not reported), bx = feature comparisons bit-exact, b = behaviour differences "
              "(a profile rule followed in another variant, not a decoding failure)")
    t.add_column("implementation", no_wrap=True)
    for h in report.handlers:
        t.add_column(_HEADERS.get(h, h.replace("_", "\n")), justify="center", no_wrap=True)
    for s in ("pass", "behav", "fail", "skip", "error", "s"):
        t.add_column(s, justify="right", no_wrap=True)
    for row in summary_rows(report):
        cells = []
        for h in report.handlers:
            v = row["cells"][h]
            if v == "skip":
                cells.append("[dim]–[/dim]")
            else:
                p, n = (int(x) for x in v.split("/"))
                colour = "green" if p == n else ("magenta" if p + row["behaviour"][h] == n else "red")
                cells.append(f"[{colour}]{v}[/]" + _note_line(row["notes"][h]))
        cnt, q = row["counts"], row["quality"]
        t.add_row(row["impl"], *cells, str(cnt["pass"]) + _note_line(_note(q)),
                  *(str(cnt[s]) for s in ("behaviour", "fail", "skip", "error")), f"{row['seconds']:.1f}")
    c.print(t)
    for row in summary_rows(report):
        fp = row["fingerprint"]
        if fp:
            why = f" [yellow]why: {escape(fp['why'])}[/]" if fp.get("why") else ""
            c.print(f"numerics {escape(row['impl'])}: {escape(fp['summary'])}{why}", highlight=False)
    rules: dict[tuple[str, str], int] = {}
    for r in report.impls:
        for o in r.outcomes:
            if o.status == "behaviour":
                rules[(r.impl, o.rule or "?")] = rules.get((r.impl, o.rule or "?"), 0) + 1
    for (impl, rule), n in rules.items():
        c.print(f"[magenta]behaviour[/] {escape(impl)}: {n} case(s) follow {escape(rule)} where the profile says "
                f"otherwise (an API difference; the decoded values agree)", markup=True, highlight=False)
    shown = 0
    for r in report.impls:
        for o in r.outcomes:
            if o.status in ("fail", "error") and shown < failures:
                c.print(f"[{'red' if o.status == 'fail' else 'yellow'}]{o.status}[/] {escape(r.impl)} {escape(o.case)}: "
                        f"{escape(o.detail[:200])}", markup=True, highlight=False)
                for line in o.stderr_tail.splitlines()[-_TERMINAL_STDERR_LINES:]:
                    c.print(f"    [dim]stderr: {escape(line)}[/dim]", markup=True, highlight=False)
                shown += 1
    total_bad = sum(r.counts()["fail"] + r.counts()["error"] for r in report.impls)
    if total_bad > shown:
        c.print(f"… and {total_bad - shown} more failures or errors (see the report)")


def write_json(report: RunReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(report.to_json(), indent=1, sort_keys=False, allow_nan=False) + "\n")
    return path


# ------------------------------------------------------------------------------------------------
# SVG


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def svg_matrix(report: RunReport) -> str:
    """Implementations × handlers; each cell coloured by its share of passes among the cases run."""
    rows = summary_rows(report)
    hs = report.handlers
    cw, ch, left, top = 110, 30, 190, 60
    w, h = left + cw * len(hs) + 10, top + ch * len(rows) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img" aria-label="pass matrix">']
    for j, hd in enumerate(hs):
        x = left + j * cw + cw / 2
        out.append(f'<text x="{x}" y="{top - 10}" text-anchor="middle" font-size="12">{_e(hd)}</text>')
    for i, row in enumerate(rows):
        y = top + i * ch
        out.append(f'<text x="{left - 8}" y="{y + ch / 2 + 4}" text-anchor="end" font-size="12">{_e(row["impl"])}</text>')
        for j, hd in enumerate(hs):
            v = row["cells"][hd]
            x = left + j * cw
            if v == "skip":
                fill, label = "#e0e0e0", "skip"
            else:
                p, n = (int(t) for t in v.split("/"))
                frac = p / n if n else 0.0
                fill = _COLORS["pass"] if p == n else (_COLORS["behaviour"] if p + row["behaviour"][hd] == n else
                                                       ("#f9a825" if frac >= 0.5 else _COLORS["fail"]))
                label = v + (f" b{row['behaviour'][hd]}" if row["behaviour"][hd] else "")
            out.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cw - 2}" height="{ch - 2}" fill="{fill}" rx="3">'
                       f'<title>{_e(row["impl"])} · {_e(hd)}: {_e(label)}</title></rect>')
            color = "#000" if fill in ("#e0e0e0", "#f9a825") else "#fff"
            out.append(f'<text x="{x + cw / 2}" y="{y + ch / 2 + 4}" text-anchor="middle" font-size="12" '
                       f'fill="{color}">{_e(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def svg_frame_error(series: list[tuple[str, list[float], bool]], title: str, width: int = 900,
                    height: int = 260) -> str:
    """Error per feature frame (RMS over the 19 non-pitch features) of several cases, one polyline each;
    failing cases drawn in red."""
    left, right, top, bottom = 60, 20, 30, 40
    pw, ph = width - left - right, height - top - bottom
    n = max((len(s) for _, s, _ in series), default=0)
    vals = [v for _, s, _ in series for v in s if v == v]
    ymax = max(vals, default=0.0)
    ymax = ymax * 1.1 if ymax > 0 else 1e-6
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{_e(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']
    for k in range(5):
        yv = ymax * k / 4
        y = top + ph - ph * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{yv:.2g}</text>')
    for k in range(6):
        xv = round((n - 1) * k / 5) if n > 1 else 0
        x = left + (pw * xv / (n - 1) if n > 1 else 0)
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">{xv}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="11">feature frame '
               f'(10 ms, fec_features order)</text>')
    for name, s, ok in series:
        if not s:
            continue
        pts = []
        for i, v in enumerate(s):
            x = left + (pw * i / (n - 1) if n > 1 else pw / 2)
            vv = v if v == v else ymax
            y = top + ph - ph * min(vv, ymax) / ymax
            pts.append(f"{x:.1f},{y:.1f}")
        color = "#1565c0" if ok else _COLORS["fail"]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-opacity="0.55" stroke-width="1.2" '
                   f'points="{" ".join(pts)}"><title>{_e(name)}</title></polyline>')
    if not any(v > 0 for v in vals):
        out.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" font-size="12" '
                   f'fill="#666">every compared frame identical (error 0)</text>')
    out.append("</svg>")
    return "".join(out)


def svg_metric_bars(rows: list[tuple[str, float, float, bool]], thr: tuple[float, float], title: str,
                    width: int = 900, height: int = 220) -> str:
    """dred_compare ``total`` (blue) and ``max`` (purple) of every compared case, one column of two dots per
    case (red when the case fails), with the two thresholds as dashed lines; a fixed height for any count."""
    left, right, top, bottom = 60, 20, 30, 30
    pw, ph = width - left - right, height - top - bottom
    vals = [v for _, t, m, _ in rows for v in (t, m) if v == v]
    ymax = max(vals + [thr[0], thr[1]]) * 1.08 or 1.0
    n = len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{_e(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']
    for v, lab in ((thr[0], "total threshold"), (thr[1], "max threshold")):
        y = top + ph - ph * v / ymax
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333" '
                   f'stroke-dasharray="4 3"/>')
        out.append(f'<text x="{left + pw - 4}" y="{y - 3:.1f}" text-anchor="end" font-size="10">{lab} {v:g}</text>')
    for k in range(5):
        yv = ymax * k / 4
        out.append(f'<text x="{left - 6}" y="{top + ph - ph * k / 4 + 4:.1f}" text-anchor="end" '
                   f'font-size="10">{yv:.2g}</text>')
    for i, (name, tot, mx, ok) in enumerate(rows):
        x = left + (pw * (i + 0.5) / n if n else pw / 2)
        for v, col in ((tot, "#1565c0"), (mx, "#6a1b9a")):
            vv = v if v == v else ymax
            y = top + ph - ph * min(vv, ymax) / ymax
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{col if ok else _COLORS["fail"]}">'
                       f'<title>{_e(name)}: {v:.4g}</title></circle>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" font-size="11">{n} cases, in '
               f'suite order</text>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}.pass{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}
.behaviour{color:#6a1b9a;font-weight:600}.skip{color:#777}.error{color:#ef6c00;font-weight:600}.meta{color:#555;font-size:13px}
pre.stderr{font-size:11px;background:#f6f6f6;padding:4px;margin:2px 0;max-height:16em;overflow:auto;white-space:pre-wrap}
code{font-size:12px}#filter{margin:6px 0;padding:3px 6px;width:320px}.small{font-size:12px;color:#555}
"""

_JS = """
(function(){
  var errs=[];
  function note(m){errs.push(String(m));
    if(document.body){document.body.setAttribute('data-js-errors',errs.join(' | '));}}
  window.addEventListener('error',function(e){note(e.message);});
  var ce=console.error;console.error=function(){note(Array.prototype.join.call(arguments,' '));
    return ce.apply(console,arguments);};
  document.addEventListener('DOMContentLoaded',function(){
    var f=document.getElementById('filter'), st=document.getElementById('status');
    var rows=Array.prototype.slice.call(document.querySelectorAll('#outcomes tbody tr'));
    function apply(){var q=f.value.toLowerCase(), s=st.value, shown=0;
      rows.forEach(function(r){var ok=(!q||r.textContent.toLowerCase().indexOf(q)>=0)&&(!s||r.getAttribute('data-status')===s);
        r.style.display=ok?'':'none'; if(ok){shown++;}});
      document.getElementById('shown').textContent=shown+' of '+rows.length+' shown';}
    f.addEventListener('input',apply); st.addEventListener('change',apply); apply();
    document.body.setAttribute('data-ready','1');
  });
})();
"""


def _features_series(report: RunReport) -> dict[str, list]:
    per: dict[str, list] = {}
    for r in report.impls:
        per[r.impl] = [(o.case, o.frame_error or [], o.status == "pass") for o in r.outcomes if o.metric is not None]
    return per


def _stderr_html(o: Any) -> str:
    """An error's stderr tail, escaped, under its reason."""
    if not o.stderr_tail:
        return ""
    return f"<div class=\"small\">stderr (last lines):</div><pre class=\"stderr\">{_e(o.stderr_tail)}</pre>"


def render_html(report: RunReport) -> str:
    """The self-contained HTML page of ``report``."""
    p: list[str] = []
    p.append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
    p.append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    p.append("<title>opus-dred conformance report</title>")
    p.append(f"<style>{_CSS}</style><script>{_JS}</script></head><body data-ready=\"0\">")
    p.append("<h1>opus-dred conformance report</h1>")
    p.append(f"<p class=\"meta\">suite <code>{_e(report.suite)}</code> · {report.cases} cases · profiles "
             f"{_e(', '.join(report.profiles))} · {_e(report.generator)} · {_e(report.created)}</p>")
    # summary
    p.append("<h2>Summary</h2><table><thead><tr><th>implementation</th><th>description</th>")
    p.extend(f"<th>{s}</th>" for s in ("pass", "partial", "bit-exact") + STATUSES[1:])
    p.append("<th>seconds</th></tr></thead><tbody>")
    for r in report.impls:
        c, q = r.counts(), r.quality()["total"]
        bx = "–" if q["compared_features"] is None else f"{q['bit_exact']} of {q['compared_features']}"
        p.append(f"<tr><td><b>{_e(r.impl)}</b></td><td class=\"small\">{_e(r.description)}</td>"
                 f"<td class=\"num pass\">{c['pass']}</td><td class=\"num\">{q['partial']}</td>"
                 f"<td class=\"num\">{bx}</td>")
        p.extend(f"<td class=\"num {s}\">{c[s]}</td>" for s in STATUSES[1:])
        p.append(f"<td class=\"num\">{r.seconds:.2f}</td></tr>")
    p.append("</tbody></table>")
    if report.strict:
        p.append("<p class=\"small\">Strict run: a case with an expected field not reported fails.</p>")
    p.append("<h2>Pass matrix per handler</h2><p class=\"small\">passed / run (behaviour differences, failures and "
             "errors count as run; skipped cases are left out; bN: N behaviour differences). A libopus build runs "
             "only its own profile's cases.</p>")
    p.append(svg_matrix(report))
    p.append(_quality_table(report))
    p.append(_fingerprint_html(report))
    # behaviour differences
    beh = [(r.impl, o) for r in report.impls for o in r.outcomes if o.status == "behaviour"]
    if beh:
        p.append(f"<h2>Behaviour differences ({len(beh)})</h2><p class=\"small\">The implementation follows another "
                 "variant of a behaviour rule of the case's profile (an API difference, e.g. how many latents a "
                 "bounded request decodes), and agrees with the case on everything both variants decode; not a "
                 "decoding failure.</p><table><thead><tr><th>implementation</th><th>case</th><th>rule</th>"
                 "<th>first field</th><th>detail</th></tr></thead><tbody>")
        for impl, o in beh:
            p.append(f"<tr><td>{_e(impl)}</td><td><code>{_e(o.case)}</code></td><td class=\"behaviour\">"
                     f"{_e(o.rule or '')}</td><td><code>{_e(o.field or '')}</code></td><td class=\"small\">"
                     f"{_e(o.detail)}</td></tr>")
        p.append("</tbody></table>")
    # failures
    bad = [(r.impl, o) for r in report.impls for o in r.outcomes if o.status in ("fail", "error")]
    p.append(f"<h2>Failures and errors ({len(bad)})</h2>")
    if bad:
        p.append("<table><thead><tr><th>implementation</th><th>case</th><th>status</th><th>first difference</th>"
                 "<th>offset</th><th>why</th></tr></thead><tbody>")
        for impl, o in bad:
            p.append(f"<tr><td>{_e(impl)}</td><td><code>{_e(o.case)}</code></td><td class=\"{o.status}\">{o.status}"
                     f"</td><td><code>{_e(o.field or '')}</code></td><td class=\"num\">"
                     f"{'' if o.offset is None else o.offset}</td><td class=\"small\">{_e(o.detail)}{_stderr_html(o)}</td></tr>")
        p.append("</tbody></table>")
    else:
        p.append("<p>None.</p>")
    # plots
    p.append("<h2>Features: error per frame and dred_compare figures</h2>")
    any_plot = False
    for r in report.impls:
        series = [(o.case, o.frame_error or [], o.status == "pass") for o in r.outcomes if o.metric is not None]
        if not series:
            continue
        any_plot = True
        bit_exact = sum(1 for o in r.outcomes if o.metric and o.metric.get("bit_exact"))
        p.append(f"<h3>{_e(r.impl)}</h3><p class=\"small\">{len(series)} feature comparisons, {bit_exact} bit-exact.</p>")
        p.append(svg_frame_error(series, f"{r.impl}: RMS error per feature frame (19 non-pitch features)"))
        bars = [(o.case, float(o.metric.get("total") or 0.0), float(o.metric.get("max") or 0.0), o.status == "pass")
                for o in r.outcomes if o.metric is not None and o.metric.get("frames")]
        thr = next((tuple(o.metric["thresholds"][:2]) for o in r.outcomes if o.metric and o.metric.get("thresholds")),
                   (0.5, 0.15))
        if bars:
            p.append(svg_metric_bars(bars, thr, f"{r.impl}: dred_compare total (blue) and max (purple) per case"))
        if all(t == 0 and m == 0 for _, t, m, _ in bars):
            p.append(f"<p class=\"small\">Every one of the {len(bars)} cases: total 0, max 0.</p>")
    if not any_plot:
        p.append("<p>No feature comparison in this run.</p>")
    # all outcomes
    p.append("<h2>Every case</h2><input id=\"filter\" placeholder=\"filter: implementation, case, field…\"> "
             "<select id=\"status\"><option value=\"\">all</option>")
    p.extend(f"<option value=\"{s}\">{s}</option>" for s in STATUSES)
    p.append("</select> <span id=\"shown\" class=\"small\"></span>")
    p.append("<table id=\"outcomes\"><thead><tr><th>implementation</th><th>case</th><th>status</th><th>detail</th>"
             "<th>dred_compare</th></tr></thead><tbody>")
    for r in report.impls:
        for o in r.outcomes:
            m = o.metric or {}
            fig = ""
            if m.get("frames"):
                pitch = m.get("pitch")
                fig = (f"total {m['total']:.3g}, max {m['max']:.3g}, pitch "
                       f"{'n/a' if pitch is None else format(pitch, '.3g')}{' · bit-exact' if m.get('bit_exact') else ''}")
            p.append(f"<tr data-status=\"{o.status}\"><td>{_e(r.impl)}</td><td><code>{_e(o.case)}</code></td>"
                     f"<td class=\"{o.status}\">{o.status}</td><td class=\"small\">{_e(o.detail)}</td>"
                     f"<td class=\"small\">{_e(fig)}</td></tr>")
    p.append("</tbody></table>")
    p.append("<p class=\"small\">Expected values come from the opus-dred reference (bitstream + refimpl). "
             "Fields an implementation cannot report (libopus: quantized values, error classes and offsets) are "
             "marked partial, never failed. The JSON report beside this page holds every figure.</p>")
    p.append("</body></html>\n")
    return "".join(p)


def _quality_table(report: RunReport) -> str:
    """Per implementation and handler: passes, of which partial, and feature comparisons bit-exact."""
    p = ["<h3>Pass, partial and bit-exact per handler</h3><p class=\"small\">passes · partial (a pass with an "
         "expected field not reported; <code>--strict</code> fails those) · bit-exact feature comparisons "
         "of those compared.</p><table id=\"quality\"><thead><tr><th>implementation</th>"]
    p.extend(f"<th>{_e(h)}</th>" for h in report.handlers)
    p.append("</tr></thead><tbody>")
    for r in report.impls:
        q = r.quality()
        p.append(f"<tr><td>{_e(r.impl)}</td>")
        for h in report.handlers:
            c = q.get(h)
            if c is None:
                p.append("<td class=\"skip\">–</td>")
                continue
            bx = "" if c["compared_features"] is None else f" · bit-exact {c['bit_exact']}/{c['compared_features']}"
            p.append(f"<td class=\"num\">{c['pass']} pass · {c['partial']} partial{bx}</td>")
        p.append("</tr>")
    p.append("</tbody></table>")
    return "".join(p)


def _fingerprint_html(report: RunReport) -> str:
    """Each implementation's numerics fingerprint: the preset matched, or the closest, why, and the scores."""
    if not report.fingerprints:
        return ""
    p = ["<h2>Numerics fingerprint</h2><p class=\"small\">Which arithmetic path an implementation's features "
         "match bit for bit, from a sample of the feature cases it answered recomputed under every preset of "
         "the reference decoder (docs/numerics.md).</p>"]
    for r in report.impls:
        fp = report.fingerprints.get(r.impl)
        if not fp:
            continue
        p.append(f"<h3>{_e(r.impl)}</h3><p class=\"fingerprint\">{_e(fp['summary'])}</p>")
        if fp.get("why"):
            p.append(f"<p class=\"small\"><b>Why not bit-exact with an x86-64 libopus build:</b> {_e(fp['why'])}.</p>")
        if fp.get("scores"):
            n = len(fp["sampled"])
            p.append("<table><thead><tr><th>preset</th><th>bit-exact cases</th><th>mean total</th><th>mean max</th>"
                     "<th>mean pitch</th></tr></thead><tbody>")
            for name, sc in fp["scores"].items():
                cells = "".join(f"<td class=\"num\">{'n/a' if sc[k] is None else format(sc[k], '.3g')}</td>"
                                for k in ("total", "max", "pitch"))
                p.append(f"<tr><td><code>{_e(name)}</code></td><td class=\"num\">{sc['bit_exact']}/{n}</td>"
                         f"{cells}</tr>")
            p.append("</tbody></table>")
    return "".join(p)


def write_html(report: RunReport, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def write_reports(report: RunReport, directory: str | Path) -> dict[str, Path]:
    """``report.json`` and ``report.html`` in ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    return {"json": write_json(report, d / "report.json"), "html": write_html(report, d / "report.html")}


# ------------------------------------------------------------------------------------------------
# impact


#: the impact page's script: JavaScript errors into ``data-js-errors``, ``data-ready="1"`` once loaded
_READY_JS = """
(function(){var errs=[];window.addEventListener('error',function(e){errs.push(String(e.message));
  if(document.body){document.body.setAttribute('data-js-errors',errs.join(' | '));}});
  document.addEventListener('DOMContentLoaded',function(){document.body.setAttribute('data-ready','1');});})();
"""


def impact_table_rows(imp: Any) -> list[list[str]]:
    """The impact table: per suite, implementation and handler, the cases run, passes, behaviour differences,
    failures, errors, skips and the rules that explain what does not pass."""
    out = []
    for r in imp.rows():
        rules = ", ".join(f"{k} {n}" for k, n in sorted(r["rules"].items(), key=lambda kv: -kv[1]))
        out.append([r["suite"], r["impl"], r["handler"], str(r["cases"]), str(r["pass"]), str(r["behaviour"]),
                    str(r["fail"]), str(r["error"]), str(r["skip"]), rules])
    return out


IMPACT_COLUMNS = ("suite", "implementation", "handler", "cases", "pass", "behav", "fail", "error", "skip",
                  "what breaks, by rule")


def render_impact_html(imp: Any, interop: dict | None = None, links: dict[str, str] | None = None) -> str:
    """The self-contained HTML page of an impact run (:mod:`opus_dred.conformance._impact`): what differs, the
    impact table, the totals by rule, the interoperability table; ``links``: direction label → its conform
    report."""
    p: list[str] = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
                    f"<title>opus-dred impact {_e(imp.a)} / {_e(imp.b)}</title><style>{_CSS}</style>"
                    f"<script>{_READY_JS}</script></head><body data-ready=\"0\">",
                    f"<h1>Impact: {_e(imp.a)} ↔ {_e(imp.b)}</h1>"]
    d = imp.diff
    p.append("<h2>What differs</h2><ul>")
    for k, v in d["constants"].items():
        p.append(f"<li>constant <code>{_e(k)}</code>: {_e(v['a'])} → {_e(v['b'])}</li>")
    for k, v in d["payload_layout"].items():
        p.append(f"<li>layout <code>{_e(k)}</code>: {_e(v['a'])} → {_e(v['b'])}</li>")
    for k, v in d["rules"].items():
        p.append(f"<li>rule <code>{_e(k)}</code> ({_e(v['summary'])}): <b>{_e(v['a'])}</b> → <b>{_e(v['b'])}</b>"
                 f"<div class=\"small\">{_e(v['a'])}: {_e(v['a_means'])}<br>{_e(v['b'])}: {_e(v['b_means'])}</div>")
        f = v.get("figures")
        if f:
            p.append(f"<div class=\"small\">they differ at {f['differ']} of {f['points']} points ({_e(f['grid'])}); "
                     f"request not covered: {_e(v['a'])} {f['short'][v['a']]}, {_e(v['b'])} "
                     f"{f['short'][v['b']]}</div>")
        p.append("</li>")
    if d["model_pack"]:
        p.append(f"<li>model pack: {_e(d['model_pack']['a'])} → {_e(d['model_pack']['b'])}</li>")
    differ = [k for k, t in d["tables"].items() if not t["equal"]]
    p.append(f"<li>statistics tables: {_e(', '.join(differ)) if differ else 'equal'}</li></ul>")
    p.append("<h2>What breaks</h2><table id=\"impact\"><thead><tr>")
    p.extend(f"<th>{_e(c)}</th>" for c in IMPACT_COLUMNS)
    p.append("</tr></thead><tbody>")
    for row in impact_table_rows(imp):
        n, ok, beh, skip = int(row[3]), int(row[4]), int(row[5]), int(row[8])
        cls = "pass" if ok + skip == n else ("behaviour" if ok + beh + skip == n else "fail")
        cells = "".join(f"<td class=\"num\">{_e(c)}</td>" if 3 <= i < 9 else f"<td>{_e(c)}</td>"
                        for i, c in enumerate(row[:9]))
        p.append(f"<tr>{cells}<td class=\"{cls}\">{_e(row[9]) or '–'}</td></tr>")
    p.append("</tbody></table>")
    p.append("<h3>Totals by rule</h3><ul>")
    for k, n in imp.by_rule().items():
        p.append(f"<li><code>{_e(k)}</code>: {n} case runs</li>")
    p.append("</ul>")
    if links:
        p.append("<p>Each direction's conformance report: " + " · ".join(
            f"<a href=\"{_e(href)}\">{_e(label)}</a>" for label, href in links.items()) + "</p>")
    if interop:
        p.append(render_interop_html(interop))
    p.append("</body></html>\n")
    return "".join(p)


def render_interop_html(t: dict) -> str:
    """Who reads whose DRED: implementations (rows) × the profile whose DRED it is (columns)."""
    p = ["<h2>Interoperability: who reads whose DRED</h2><p class=\"small\">Each profile's writer's 26-chunk "
         "payload, with the full request and with 20 ms. reads: found, every value equal; reads (rule): equal but "
         "for what the rule decides; ignores: no DRED, no error (another version); misreads / error.</p>"
         "<table id=\"interop\"><thead><tr><th>reader \\ DRED of</th>"]
    p.extend(f"<th>{_e(x)}</th>" for x in t["profiles"])
    p.append("</tr></thead><tbody>")
    for impl in t["impls"]:
        p.append(f"<tr><td>{_e(impl)}</td>")
        for prof in t["profiles"]:
            v = t["cells"][impl][prof]
            cls = "pass" if v == "reads" else ("behaviour" if v.startswith("reads") else
                                               ("skip" if v == "ignores" else "fail"))
            tip = " | ".join(t["details"][impl][prof])
            p.append(f"<td class=\"{cls}\" title=\"{_e(tip)}\">{_e(v)}</td>")
        p.append("</tr>")
    p.append("</tbody></table>")
    return "".join(p)


def interop_markdown(t: dict) -> str:
    """The interoperability table as Markdown (docs/profiles.md)."""
    lines = ["| reader \\ DRED of | " + " | ".join(f"`{x}`" for x in t["profiles"]) + " |",
             "|---|" + "---|" * len(t["profiles"])]
    for impl in t["impls"]:
        lines.append(f"| `{impl}` | " + " | ".join(t["cells"][impl][x] for x in t["profiles"]) + " |")
    return "\n".join(lines)
