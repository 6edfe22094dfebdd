"""The review page's Jinja2 templates, autoescaped (a prompt under review is hostile HTML).

Kept as strings in a module rather than files so that every kind of install carries
them without package-data rules.
"""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}bastion review{% endblock %}</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
 table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:.4rem;
 text-align:left;vertical-align:top} pre{white-space:pre-wrap;background:#f6f6f6;padding:.8rem}
 .block{color:#b00} .review{color:#80b} .flag{color:#a60} .allow{color:#080}
 button{padding:.4rem 1rem;margin-right:.5rem} .error{color:#b00}
</style></head><body>
<header>{% if who %}<form method="post" action="/review/logout" style="float:right">
<input type="hidden" name="csrf" value="{{ csrf }}">
<span>{{ who.name }} ({{ who.role }})</span> <button type="submit">log out</button></form>
{% endif %}<h1><a href="/review">bastion review</a></h1></header>
{% block body %}{% endblock %}
</body></html>"""

_LOGIN = """{% extends "base.html" %}{% block title %}log in: bastion review{% endblock %}
{% block body %}
<p>Log in with a reviewer or admin API key.</p>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/review/login">
<label>API key <input type="password" name="key" id="key" size="60" autocomplete="off"></label>
<button type="submit" id="login">log in</button>
</form>{% endblock %}"""

_QUEUE = """{% extends "base.html" %}{% block body %}
<p>{{ pending }} pending.
 Show: {% for s in ["pending", "approved", "rejected"] %}
 <a href="/review?state={{ s }}">{{ s }}</a>{% endfor %}</p>
<table id="queue"><tr><th>id</th><th>kind</th><th>direction</th><th>verdict</th>
<th>score</th><th>state</th><th>created</th><th>text</th></tr>
{% for item in items %}<tr class="item" data-id="{{ item.id }}">
<td><a href="/review/items/{{ item.id }}">#{{ item.id }}</a></td><td>{{ item.kind }}</td>
<td>{{ item.direction }}</td><td class="{{ item.verdict }}">{{ item.verdict }}</td>
<td>{{ "%.3f"|format(item.score) }}</td><td>{{ item.state }}</td>
<td>{{ item.created_at[:19] }}</td><td>{{ item.text[:80] }}</td></tr>
{% else %}<tr><td colspan="8" id="empty">nothing {{ state }}</td></tr>{% endfor %}
</table>{% endblock %}"""

_ITEM = """{% extends "base.html" %}{% block title %}#{{ item.id }}: bastion review{% endblock %}
{% block body %}
<h2>#{{ item.id }}: {{ item.kind }}, {{ item.direction }},
 <span class="{{ item.verdict }}">{{ item.verdict }}</span> (score {{ "%.3f"|format(item.score) }}),
 <span id="state">{{ item.state }}</span></h2>
<p>key {{ item.key_id }}, created {{ item.created_at }}</p>
<h3>Text</h3><pre id="text">{{ item.text }}</pre>
<h3>Reasons</h3><p id="reason">{{ item.reason }}</p>
<h3>Layers</h3><table id="layers"><tr><th>layer</th><th>verdict</th><th>score</th>
<th>ms</th><th>reason</th></tr>
{% for layer in item.layers %}<tr><td>{{ layer.name }}</td>
<td class="{{ layer.verdict }}">{{ layer.verdict }}</td><td>{{ "%.3f"|format(layer.score) }}</td>
<td>{{ "%.2f"|format(layer.latency_ms) }}</td><td>{{ layer.reason }}</td></tr>{% endfor %}
</table>
{% if item.state == "pending" %}
<form method="post" action="/review/items/{{ item.id }}/decide">
<input type="hidden" name="csrf" value="{{ csrf }}">
<p><label>note <input name="note" size="60"></label></p>
<button type="submit" name="decision" value="approve" id="approve">approve (benign)</button>
<button type="submit" name="decision" value="reject" id="reject">reject (attack)</button>
</form>
{% else %}<p>decided by {{ item.decided_by }} at {{ item.decided_at }}</p>{% endif %}
<h3>Audit</h3><ul id="audit">{% for a in audit %}
<li>{{ a.at }}: {{ a.actor }} {{ a.action }} {{ a.detail }}</li>{% endfor %}</ul>
{% endblock %}"""

ENV = Environment(loader=DictLoader({"base.html": _BASE, "login.html": _LOGIN,
                                     "queue.html": _QUEUE, "item.html": _ITEM}),
                  autoescape=select_autoescape(default=True, default_for_string=True))
