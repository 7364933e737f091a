"""The review page: a small local web server over the review queue (127.0.0.1 only).

GET /               the page: image grid, reasons, the human rules, keyboard shortcuts
GET /api/queue      items waiting for review, and progress counts (JSON)
GET /image/<id>     one queued image (only files the queue knows; no paths from the URL)
POST /api/decide    {"id": 3, "decision": "accept" | "reject"}

Writes need the page's random token in an X-Review-Token header: a page from another site
cannot send that header to 127.0.0.1 without a CORS preflight, which this server refuses.
Requests whose Host is not 127.0.0.1/localhost are refused (DNS rebinding).
"""
from __future__ import annotations

import html
import json
import mimetypes
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shoefind.curate.queue import ReviewQueue

MAX_BODY = 10_000


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, queue: ReviewQueue, human_rules=(), host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.queue = queue
        self.human_rules = list(human_rules)
        self.token = secrets.token_urlsafe(16)
        self.decided_here = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):  # noqa: A002 - keep the terminal quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json")

    def _host_ok(self) -> bool:
        # DNS rebinding guard: a page whose name resolves to 127.0.0.1 still sends its own Host
        port = self.server.server_address[1]
        ok = self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")
        if not ok:
            self._json({"error": "wrong Host header"}, HTTPStatus.MISDIRECTED_REQUEST)
        return ok

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            return self._send(200, page_html(self.server.token, self.server.human_rules).encode(),
                              "text/html; charset=utf-8")
        if path == "/api/queue":
            items = [_public(i) for i in self.server.queue.items("review")]
            return self._json({"items": items, "counts": self.server.queue.counts(),
                               "decided_here": self.server.decided_here})
        if path.startswith("/image/") and path[7:].isdigit():
            return self._image(int(path[7:]))
        self._json({"error": "not found"}, 404)

    def _image(self, item_id: int) -> None:
        try:
            item = self.server.queue.get(item_id)
        except KeyError:
            return self._json({"error": f"no image {item_id}"}, 404)
        for candidate in (item.stored_path, item.source):
            if candidate and Path(candidate).is_file():
                kind = mimetypes.guess_type(candidate)[0] or "application/octet-stream"
                if not kind.startswith("image/"):
                    kind = "application/octet-stream"
                return self._send(200, Path(candidate).read_bytes(), kind)
        self._json({"error": f"image {item_id}: file is gone"}, 410)

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        if self.path != "/api/decide":
            return self._json({"error": "not found"}, 404)
        if not secrets.compare_digest(self.headers.get("X-Review-Token", ""), self.server.token):
            return self._json({"error": "missing or wrong review token"}, HTTPStatus.FORBIDDEN)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json({"error": "request too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            item = self.server.queue.decide(int(body["id"]), str(body["decision"]), reviewer="review-page")
        except (KeyError, ValueError, TypeError, FileNotFoundError) as exc:
            return self._json({"error": str(exc).strip("'\"")}, 400)
        self.server.decided_here += 1
        self._json({"item": _public(item), "counts": self.server.queue.counts()})


def _public(item) -> dict:
    d = item.as_dict()
    d["image_url"] = f"/image/{item.id}"
    d.pop("stored_path", None)
    return d


def page_html(token: str, human_rules) -> str:
    rules = "".join(f"<li>{html.escape(r)}</li>" for r in human_rules)
    return PAGE.replace("__TOKEN__", json.dumps(token)).replace("__RULES__", rules)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoefind review</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
 header{display:flex;gap:2em;align-items:flex-start}
 #progress{font-size:1.2em;font-weight:bold}
 progress{width:300px}
 .keys kbd{border:1px solid #999;border-radius:3px;padding:0 4px;background:#fff}
 #grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px;margin-top:1em}
 .card{background:#fff;border:3px solid #ddd;border-radius:6px;padding:6px}
 .card.current{border-color:#1565c0}
 .card.accepted{border-color:#2e7d32;opacity:.55}
 .card.rejected{border-color:#c62828;opacity:.55}
 .card img{width:100%;height:200px;object-fit:contain;background:#eee}
 .shoe{font-weight:bold}.reason{font-size:.85em;color:#555}.score{font-size:.8em;color:#777}
 button{margin-right:4px}
</style></head><body>
<header>
 <div><h1>Review queue</h1>
  <div id="progress">loading...</div><progress id="bar" value="0" max="1"></progress>
  <p class="keys"><kbd>A</kbd> accept &nbsp; <kbd>R</kbd> reject &nbsp; <kbd>&larr;</kbd>/<kbd>&rarr;</kbd>
   or <kbd>J</kbd>/<kbd>K</kbd> move</p></div>
 <div><h2>Accept a photo only if</h2><ul id="rules">__RULES__</ul></div>
</header>
<div id="grid"></div>
<script>
const TOKEN = __TOKEN__;
let items = [], current = 0, total = 0, decided = 0;
function el(tag, cls, text){const e=document.createElement(tag); if(cls)e.className=cls; if(text!==undefined)e.textContent=text; return e;}
function render(){
  const grid = document.getElementById('grid'); grid.innerHTML='';
  items.forEach((it, i) => {
    const c = el('div', 'card' + (i===current?' current':'') + (it.done?' '+it.done:''));
    c.id = 'item-' + it.id; c.dataset.id = it.id;
    const img = el('img'); img.loading = 'lazy'; img.src = it.image_url; img.alt = it.source; c.appendChild(img);
    c.appendChild(el('div','shoe', it.shoe || '(no shoe folder)'));
    c.appendChild(el('div','reason', it.source.split('/').slice(-2).join('/')));
    (it.reasons||[]).forEach(r => c.appendChild(el('div','reason', r.rule + ': ' + r.reason)));
    const s = Object.entries(it.scores||{}).map(([k,v]) => k + ' ' + Number(v).toFixed(2)).join(', ');
    if (s) c.appendChild(el('div','score', s));
    const a = el('button','accept','Accept'); a.onclick = () => {current=i; decide('accept');};
    const r = el('button','reject','Reject'); r.onclick = () => {current=i; decide('reject');};
    if (!it.done){ c.appendChild(a); c.appendChild(r); } else c.appendChild(el('div','status', it.done));
    c.onclick = (ev) => { if(ev.target.tagName!=='BUTTON'){current=i; render();} };
    grid.appendChild(c);
  });
  document.getElementById('progress').textContent = decided + ' of ' + total + ' decided';
  const bar = document.getElementById('bar'); bar.max = Math.max(total,1); bar.value = decided;
  const cur = document.querySelector('.card.current'); if (cur) cur.scrollIntoView({block:'nearest'});
}
async function load(){
  const r = await fetch('/api/queue'); const data = await r.json();
  items = data.items; total = items.length; decided = 0; current = 0; render();
}
async function decide(decision){
  const it = items[current]; if (!it || it.done) return;
  const r = await fetch('/api/decide', {method:'POST', headers:{'Content-Type':'application/json','X-Review-Token':TOKEN},
                                          body: JSON.stringify({id: it.id, decision})});
  const data = await r.json();
  if (!r.ok){ alert(data.error); return; }
  it.done = data.item.status; decided += 1;
  const next = items.findIndex((x, j) => j > current && !x.done);
  if (next >= 0) current = next;
  render();
  document.body.dataset.lastDecision = it.id + ':' + it.done;
}
document.addEventListener('keydown', ev => {
  if (ev.target.tagName === 'INPUT') return;
  const k = ev.key.toLowerCase();
  if (k === 'a') decide('accept');
  else if (k === 'r' || k === 'x') decide('reject');
  else if (k === 'arrowright' || k === 'k') { current = Math.min(current+1, items.length-1); render(); }
  else if (k === 'arrowleft' || k === 'j') { current = Math.max(current-1, 0); render(); }
});
load();
</script></body></html>
"""
