#!/usr/bin/env python3
"""Renders the Slack message and the PagerDuty incident of docs/notify/samples.json (the
real payloads the end-to-end test sent its stand-ins; regenerate with
LOCKSTEP_NOTIFY_SAMPLES=docs/notify/samples.json cargo test --release --test notify)
as the receivers display them, as HTML pages; screenshot them with headless chromium:

    python3 docs/notify/render.py && for p in slack pagerduty; do
      chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --screenshot=docs/notify/$p.png --window-size=760,$([ $p = slack ] && echo 500 || echo 820) docs/notify/$p.html; done
"""
import datetime
import html
import json
import pathlib
import re

HERE = pathlib.Path(__file__).parent
# Slack's emoji, drawn (headless chromium may have no emoji font).
EMOJI = {f":{name}:": f'<span class="dot" style="background:{colour}"></span>' for name, colour in [
    ("red_circle", "#dd2e44"), ("large_orange_circle", "#f4900c"),
    ("large_yellow_circle", "#fdcb58"), ("white_circle", "#e6e7e8")]}


def ordinal(n):
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def slack_date(m):
    """<!date^epoch^{date_short_pretty} {time} UTC|fallback>, as Slack formats it."""
    t = datetime.datetime.fromtimestamp(int(m.group(1)), datetime.timezone.utc)
    text = m.group(2)
    text = text.replace("{date_short_pretty}", f"{t:%b} {ordinal(t.day)}, {t.year}")
    text = text.replace("{time}", t.strftime("%-I:%M %p"))
    return text


def mrkdwn(text):
    """Slack mrkdwn to HTML: the escapes, dates, emoji, ```pre```, `code`, *bold*."""
    text = re.sub(r"<!date\^(\d+)\^([^|>]*)\|[^>]*>", slack_date, text)
    text = html.escape(html.unescape(text), quote=False)
    for code, char in EMOJI.items():
        text = text.replace(code, char)
    text = re.sub(r"```(.*?)```", r"<pre>\1</pre>", text, flags=re.S)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    return text.replace("\n", "<br>")


def slack(message):
    parts = []
    for block in message["blocks"]:
        kind = block["type"]
        if kind == "header":
            parts.append(f'<div class="header">{html.escape(block["text"]["text"])}</div>')
        elif kind == "section" and "fields" in block:
            cells = "".join(f'<div class="field">{mrkdwn(f["text"])}</div>' for f in block["fields"])
            parts.append(f'<div class="fields">{cells}</div>')
        elif kind == "section":
            parts.append(f'<div class="section">{mrkdwn(block["text"]["text"])}</div>')
        elif kind == "context":
            parts.append('<div class="context">' + " ".join(mrkdwn(e["text"]) for e in block["elements"]) + "</div>")
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 15px/1.46668 Lato, 'Helvetica Neue', Arial, sans-serif; color: #1d1c1d; margin: 0; background: #fff; }}
.channel {{ border-bottom: 1px solid #ddd; padding: 10px 20px; font-weight: 900; }}
.msg {{ display: flex; padding: 12px 20px; }}
.avatar {{ width: 36px; height: 36px; border-radius: 4px; background: #4a154b; color: #fff; font-weight: 900; text-align: center; line-height: 36px; margin-right: 8px; flex: none; }}
.name {{ font-weight: 900; }} .app {{ background: #ddd; font-size: 10px; padding: 1px 3px; border-radius: 2px; color: #555; }}
.dot {{ display: inline-block; width: 14px; height: 14px; border-radius: 50%; vertical-align: -2px; }}
.header {{ font-size: 18px; font-weight: 900; margin: 6px 0 4px; }}
.section {{ margin: 4px 0; }} .fields {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px 16px; margin: 8px 0; }}
code {{ font: 12px Monaco, Menlo, monospace; color: #e01e5a; background: #f8f8f8; border: 1px solid #ddd; border-radius: 3px; padding: 0 2px; word-break: break-all; }}
pre {{ font: 12px Monaco, Menlo, monospace; background: #f8f8f8; border: 1px solid #ddd; border-radius: 4px; padding: 8px; margin: 4px 0; }}
.context {{ color: #616061; font-size: 12px; margin-top: 6px; }}
</style><div class="channel"># soc-alerts</div><div class="msg"><div class="avatar">L</div><div>
<span class="name">lockstep</span> <span class="app">APP</span>
{''.join(parts)}</div></div>"""


def pagerduty(event):
    p = event["payload"]
    badge = {"critical": "#a3001b", "error": "#d9480f", "warning": "#e8a317", "info": "#3b7dd8"}[p["severity"]]
    details = p["custom_details"]
    rows = [("lineage", details["lineage"])] + [(f"alert.{k}", v) for k, v in details["alert"].items()]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>"
        for k, v in rows)
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 14px/1.45 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #333; margin: 0; background: #f5f6f7; }}
.top {{ background: #06ac38; color: #fff; padding: 8px 20px; font-weight: 600; }}
.card {{ background: #fff; margin: 14px 20px; border: 1px solid #ddd; border-radius: 4px; padding: 14px 18px; }}
.status {{ display: inline-block; background: #c41e3a; color: #fff; border-radius: 3px; padding: 1px 8px; font-size: 12px; font-weight: 600; }}
.sev {{ display: inline-block; background: {badge}; color: #fff; border-radius: 3px; padding: 1px 8px; font-size: 12px; font-weight: 600; }}
h1 {{ font-size: 18px; margin: 8px 0; }} .meta {{ color: #666; font-size: 13px; }} .meta b {{ color: #333; }}
table {{ border-collapse: collapse; width: 100%; font-size: 12px; }} th {{ text-align: left; color: #666; font-weight: 600; padding: 3px 10px 3px 0; vertical-align: top; white-space: nowrap; }}
td {{ padding: 3px 0; word-break: break-all; font-family: Menlo, monospace; }}
</style><div class="top">PagerDuty · Incidents</div><div class="card">
<span class="status">Triggered</span> <span class="sev">{p["severity"].capitalize()}</span>
<h1>{html.escape(p["summary"])}</h1>
<div class="meta"><b>Source</b> {html.escape(p["source"])} · <b>Component</b> {html.escape(p["component"])} · <b>Group</b> {html.escape(p["group"] or "")} · <b>Class</b> {html.escape(p["class"])}</div>
<div class="meta"><b>Created</b> {html.escape(p["timestamp"])} · <b>Dedup key</b> {html.escape(event["dedup_key"])}</div></div>
<div class="card"><b>Custom details</b><table>{table}</table></div>"""


samples = json.loads((HERE / "samples.json").read_text())
(HERE / "slack.html").write_text(slack(samples["slack"]))
(HERE / "pagerduty.html").write_text(pagerduty(samples["pagerduty"]))
