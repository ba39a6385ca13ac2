"""The console's HTML: one layout, a page per view; the data comes from the JSON API.

Pages are plain server-rendered HTML with the viewer's CSRF token in a meta tag;
``static/console.js`` fetches the API and draws charts with the vendored uPlot.
Nothing is loaded from another origin (the Content-Security-Policy says so).
"""

from __future__ import annotations

import json
from html import escape

from fastapi.responses import HTMLResponse

from llmloop.contracts.panels import DASHBOARDS, Dashboard

# Only this origin: no CDN, no inline script (page data travels as JSON in a
# non-executed <script type="application/json">).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


def html_response(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        text,
        status,
        headers={
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin",
        },
    )


NAV = [
    *[(f"/console/d/{d.uid}", d.title.removeprefix("llmloop / ")) for d in DASHBOARDS],
    ("/console/conversations", "Conversations"),
    ("/console/alerts", "Alerts"),
    ("/console/retraining", "Retraining"),
    ("/console/review", "Review"),
]


def layout(title: str, body: str, *, csrf: str = "", active: str = "", data: object = None) -> str:
    nav = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{escape(label)}</a>'
        for href, label in NAV
    )
    page_data = (
        '<script type="application/json" id="page-data">'
        # Every "<" as its JSON escape: no "</script>" or "<!--" can end or bend the block.
        + json.dumps(data).replace("<", "\\u003c")
        + "</script>"
        if data is not None
        else ""
    )
    signout = (
        '<form method="post" action="/console/signout" id="signout">'
        '<button type="submit">Sign out</button></form>'
        if csrf
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{escape(csrf)}">
<title>{escape(title)} · llmloop</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/console/static/console.css">
</head><body>
<header><a class="brand" href="/console/">llmloop</a>
<nav>{nav if csrf else ""}</nav>{signout}</header>
<main>{body}</main>
{page_data}
<script src="/console/static/vendor/uPlot.iife.min.js"></script>
<script src="/console/static/console.js"></script>
<script src="/console/static/views.js"></script>
</body></html>"""


FILTER_BAR = """<form class="filters" id="filters">
<label>Project <select name="project" multiple></select></label>
<label>Model <select name="model" multiple></select></label>
<label>Prompt version <select name="prompt_version" multiple></select></label>
<label>Model version <select name="model_version" multiple></select></label>
<label>Time range <select name="range">
<option value="1h">last hour</option><option value="6h" selected>last 6 hours</option>
<option value="24h">last 24 hours</option><option value="7d">last 7 days</option>
<option value="30d">last 30 days</option></select></label>
<button type="submit">Apply</button></form>"""


def dashboard_page(d: Dashboard, csrf: str) -> str:
    panels = "".join(
        f'<section class="panel w{p.width}" data-panel="{i}" data-kind="{p.kind}">'
        f"<h3>{escape(p.title)}</h3>"
        + (f'<p class="desc">{escape(p.description)}</p>' if p.description else "")
        + '<div class="body"><span class="muted">loading…</span></div></section>'
        for i, p in enumerate(d.panels)
    )
    body = (
        f"<h1>{escape(d.title.removeprefix('llmloop / '))}</h1>"
        f'<p class="question">{escape(d.question)}</p>{FILTER_BAR}'
        f'<div class="grid" id="dashboard">{panels}</div>'
    )
    return layout(
        d.title,
        body,
        csrf=csrf,
        active=f"/console/d/{d.uid}",
        data={"view": "dashboard", "uid": d.uid},
    )


def signin_page(error: str = "") -> str:
    body = f"""<div class="signin"><h1>Sign in to the llmloop console</h1>
<p>Use the link that <code>llmloop up</code> printed, or a token from
<code>llmloop console token create --project NAME</code>.</p>
{f'<p class="error">{escape(error)}</p>' if error else ""}
<form method="post" action="/console/signin">
<input type="password" name="token" placeholder="llc_…" autocomplete="off" required>
<button type="submit">Sign in</button></form></div>"""
    return layout("Sign in", body)


def view_page(title: str, view: str, csrf: str, active: str, extra: dict | None = None) -> str:
    """A page whose content console.js builds from the API (lists, a conversation, review)."""
    filters = FILTER_BAR if view in {"conversations", "alerts", "retraining", "review"} else ""
    body = f'<h1>{escape(title)}</h1>{filters}<div id="view" data-view="{view}"></div>'
    return layout(title, body, csrf=csrf, active=active, data={"view": view, **(extra or {})})
