"""The live demo's outputs: the Rich timeline table (redrawn as stages move) and the HTML report file."""

from __future__ import annotations

import html
import time
from pathlib import Path

from rich.table import Table

from kubeguard.lab.live import LiveResult, StageResult
from kubeguard.redact import elide_blobs

STATUS_STYLE = {"done": "red", "blocked": "green", "not reached": "dim", "failed": "yellow", "running": "cyan",
                "pending": "dim"}


def _clock(stamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _detected(stage: StageResult) -> str:
    if stage.detected is None:
        return "no" if stage.status in ("done", "blocked", "failed") else "-"
    if stage.delay is None:
        return "yes"
    return f"yes, +{stage.delay * 1000:.0f} ms" if stage.delay < 1 else f"yes, +{stage.delay:.1f} s"


def timeline_table(result: LiveResult) -> Table:
    """One row per stage: attacker status, detected (when), by which rule, on which pod."""
    mode = "protect" if result.protect else "detect"
    table = Table(title=f"Tesla breach, live ({mode})", title_justify="left")
    for column in ("#", "stage", "ATT&CK", "attack", "started", "detected", "rule", "pod"):
        table.add_column(column, overflow="fold")
    for number, stage in enumerate(result.stages, 1):
        style = STATUS_STYLE.get(stage.status, "")
        table.add_row(str(number), stage.spec.title, stage.spec.technique, f"[{style}]{stage.status}[/]",
                      _clock(stage.started), _detected(stage), stage.rule or "-", stage.pod or "-")
    return table


def summary_lines(result: LiveResult) -> list[str]:
    """What the run showed, in a few plain lines (the command prints them after the table)."""
    lines: list[str] = []
    if result.protect:
        if result.cut_at:
            cut = next(s for s in result.stages if s.spec.key == result.cut_at)
            lines.append(f"chain cut at stage '{cut.spec.title}': the dashboard's workload policy (protect) holds only "
                         "its own server, so the exec guard killed the shell before its first instruction; "
                         "every later stage was not reached")
        else:
            lines.append("chain NOT cut")
    caught = sum(1 for s in result.stages if s.rule is not None)
    lines.append(f"stages caught: {caught}/{sum(1 for s in result.stages if s.status != 'not reached')} reached "
                 f"({len(result.stages)} in the chain), {len(result.alerts)} alerts in all")
    lines.append(f"object store log: {len(result.s3_downloads)} object download(s); pool log: {result.shares} "
                 "share(s)")
    lines.append("teardown: nothing left" if not result.leftovers else
                 "teardown: LEFT BEHIND: " + ", ".join(result.leftovers))
    return lines


def _path_html(result: LiveResult) -> str:
    boxes = ['<div class="node start">attacker<br><small>outside the lab</small></div>']
    for stage in result.stages:
        boxes.append(f'<div class="node {html.escape(stage.status.replace(" ", "-"))}">'
                     f"{html.escape(stage.spec.title)}<br><small>{html.escape(stage.status)}"
                     f"{' &middot; caught' if stage.rule else ''}</small></div>")
    return '<div class="path">' + '<span class="arrow">&rarr;</span>'.join(boxes) + "</div>"


def write_html(result: LiveResult, path: Path) -> Path:
    """The report: timeline, attack path, flows and alerts, one self-contained HTML file."""
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(s.status.replace(' ', '-'))}'><td>{n}</td><td>{esc(s.spec.title)}</td>"
        f"<td>{esc(s.spec.technique)}</td><td>{esc(s.status)}</td><td>{_clock(s.started)}</td>"
        f"<td>{esc(_detected(s))}</td><td>{esc(s.rule or '-')}</td><td>{esc(s.pod or '-')}</td>"
        f"<td>{esc(s.detail)}</td></tr>" for n, s in enumerate(result.stages, 1))
    flows = "".join(f"<tr><td>{esc(f['client'])}</td><td>{esc(f['server'])}</td><td>{esc(f['service'])}</td>"
                    f"<td>{f['requests']}</td></tr>" for f in result.flows)
    alerts = "".join(
        f"<tr><td>{esc(str(a.get('time', '')))}</td><td>{esc(str(a.get('priority', '')))}</td>"
        f"<td>{esc(str(a.get('rule', '')))}</td><td>{esc(elide_blobs(str(a.get('output', '')))[:400])}</td></tr>"
        for a in result.alerts)
    summary = "".join(f"<li>{esc(line)}</li>" for line in summary_lines(result))
    mode = "protect" if result.protect else "detect"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.started))
    text = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kubeguard: Tesla breach, live ({mode})</title>
<style>
body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}}
tr.done td{{background:#fde2e2}} tr.blocked td{{background:#dff5e1}} tr.not-reached td{{color:#999}}
.path{{display:flex;flex-wrap:wrap;align-items:center;gap:4px}} .arrow{{font-size:20px}}
.node{{border:2px solid #888;border-radius:6px;padding:6px 10px;font-size:13px}}
.node.done{{border-color:#c0392b}} .node.blocked{{border-color:#27ae60;background:#dff5e1}}
.node.not-reached{{border-style:dashed;color:#999}} .node.start{{background:#eee}}
</style></head><body>
<h1>Tesla breach, live ({mode})</h1>
<p>Dashboard pod: {esc(result.dashboard)}; run started {esc(started)}.</p>
<ul>{summary}</ul>
<h2>Attack path</h2>{_path_html(result)}
<h2>Timeline</h2>
<table><tr><th>#</th><th>stage</th><th>ATT&amp;CK</th><th>attack</th><th>started</th><th>detected</th><th>rule</th>
<th>pod</th><th>what the attacker got</th></tr>{rows}</table>
<h2>Flows (as the lab's services logged them)</h2>
<table><tr><th>client</th><th>server</th><th>service</th><th>requests</th></tr>{flows}</table>
<h2>Alerts ({len(result.alerts)})</h2>
<table><tr><th>time</th><th>priority</th><th>rule</th><th>output</th></tr>{alerts}</table>
</body></html>
"""
    path.write_text(text)
    return path
