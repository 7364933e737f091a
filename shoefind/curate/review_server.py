"""The review page: a small local web server over the review queue (127.0.0.1 only).

GET /?token=T       the page (sets a same-origin session cookie); without the token: 403
GET /api/queue      one page of items with filters (status, reason, folder), sorted most
                    informative first (default), in queue order or by score, facet counts and
                    progress (JSON); items carry the shoe they were crawled for and the model's guesses
GET /image/<id>     one queued image; /image/<id>/match the image it may duplicate
POST /api/decide    {"id": 3, "decision": "accept" | "reject"} or {"ids": [3, 4], ...}:
                    each item's result is reported; "label": "SHOE" (or "suggested") with accept
                    files it under that shoe (the model's suggestion is one click on the page)
POST /api/undo      reopens the last decision made on this page

Safety: every request needs the session cookie, the ?token= of the printed URL, or the
X-Review-Token header; writes always need the header (a page from another site cannot send
it without a CORS preflight, which this server refuses). Requests whose Host is not
127.0.0.1/localhost are refused (DNS rebinding). Every response forbids framing
(X-Frame-Options, CSP frame-ancestors) and sniffing. Malformed requests (bad ids, bad
Content-Length, non-ASCII request lines) get 400 with a reason, never a dropped connection.
"""
from __future__ import annotations

import html
import json
import mimetypes
import secrets
import threading
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from shoefind.curate.queue import ReviewQueue, informative_order
from shoefind.features.table import parse_folder_name
from shoefind.vocab import vocabularies

MAX_BODY = 100_000
MAX_ID = 2**63 - 1          # SQLite INTEGER
MAX_BULK = 1000
PER_PAGE = 48
MAX_QUERY_FIELDS = 20      # the page sends a handful; parse_qs refuses more
COOKIE = "shoefind_review"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'; img-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                               "form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATUS_FILTERS = ("review", "accepted", "rejected", "all")


class BadRequest(ValueError):
    """A malformed request: answered 400 with this message."""


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, queue: ReviewQueue, human_rules=(), host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.queue = queue
        self.human_rules = list(human_rules)
        self.token = secrets.token_urlsafe(16)
        self.decided_here = 0
        self.history: list[int] = []          # ids decided on this page, for undo
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def url(self) -> str:
        """The page's address with its token (what `shoefind review` prints)."""
        return f"{self.base_url}?token={self.token}"

    def start_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


def folder_warning(shoe: str) -> str | None:
    """Why a shoe folder name does not follow Brand_Top_Color_Sole_Name (None when it does)."""
    if not shoe:
        return "the image is not inside a shoe folder"
    fields = parse_folder_name(shoe)
    if fields is None:
        return "folder name is not Brand_Top_Color_Sole_Name (five parts joined by '_')"
    vocabs = vocabularies()
    unknown = [f"{attr} '{fields[attr]}'" for attr in ("brand", "hightop", "color", "sole")
               if attr in vocabs and vocabs[attr].read(fields[attr]).problem == "unknown"]
    return f"not in rules/vocabularies.yaml: {', '.join(unknown)}" if unknown else None


def parse_id(value) -> int:
    """A queue id from JSON or a URL: a positive integer that fits SQLite, else BadRequest."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadRequest(f"an image id must be a whole number, not {str(value)[:40]!r}")
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise BadRequest(f"an image id must be a whole number, not {text[:40]!r}")
    number = int(text)
    if not 0 < number <= MAX_ID:
        raise BadRequest(f"image id {text[:40]} is out of range")
    return number


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):  # noqa: A002 - keep the terminal quiet
        pass

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (bad request line, headers...) get the same headers and JSON
        try:
            self._json({"error": message or HTTPStatus(code).phrase}, code)
        except Exception:   # the client went away: nothing to answer
            pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (SECURITY_HEADERS | (extra or {})).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj, default=str).encode(), "application/json")

    def _host_ok(self) -> bool:
        # DNS rebinding guard: a page whose name resolves to 127.0.0.1 still sends its own Host
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _authorised(self, query: dict) -> bool:
        token = self.server.token
        given = [self.headers.get("X-Review-Token", ""), (query.get("token") or [""])[0]]
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            given.append(cookie[COOKIE].value if COOKIE in cookie else "")
        except CookieError:
            pass
        return any(secrets.compare_digest(g.encode("utf-8", "replace"), token.encode()) for g in given if g)

    def _guarded(self, handler) -> None:
        """Run a request handler; bad input answers 400 and nothing escapes as a traceback."""
        try:
            if not self.path.isascii():
                raise BadRequest("the request path must be ASCII (percent-encode other characters)")
            if not self._host_ok():
                return self._json({"error": "wrong Host header"}, HTTPStatus.MISDIRECTED_REQUEST)
            handler()
        except BadRequest as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:    # a bug: say so (traceback on the terminal), keep serving
            import traceback
            traceback.print_exc()
            self._json({"error": f"internal error: {type(exc).__name__}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_GET(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def _get(self) -> None:
        url = urlsplit(self.path)
        try:
            query = parse_qs(url.query, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:   # more fields than that: refused by parse_qs, the client's mistake
            raise BadRequest(f"too many query fields (at most {MAX_QUERY_FIELDS})") from None
        if not self._authorised(query):
            if url.path == "/":
                return self._send(HTTPStatus.FORBIDDEN, FORBIDDEN_PAGE.encode(), "text/html; charset=utf-8")
            return self._json({"error": "open the review page through the link `shoefind review` printed"},
                              HTTPStatus.FORBIDDEN)
        if url.path == "/":
            cookie = f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            return self._send(200, page_html(self.server.token, self.server.human_rules).encode(),
                              "text/html; charset=utf-8", {"Set-Cookie": cookie})
        if url.path == "/api/queue":
            return self._json(self._queue_page(query))
        parts = url.path.strip("/").split("/")
        if parts[0] == "image" and len(parts) in (2, 3) and (len(parts) == 2 or parts[2] == "match"):
            return self._image(parse_id(parts[1]), match=len(parts) == 3)
        self._json({"error": "not found"}, 404)

    def _queue_page(self, query: dict) -> dict:
        one = lambda key, default="": (query.get(key) or [default])[0]  # noqa: E731
        status = one("status", "review")
        if status not in STATUS_FILTERS:
            raise BadRequest(f"status must be one of {', '.join(STATUS_FILTERS)}")
        items = self.server.queue.items(None if status == "all" else status)
        reasons, folders, score_names = {}, {}, set()
        for item in items:
            for rule in {r.get("rule", "") for r in item.reasons}:
                reasons[rule] = reasons.get(rule, 0) + 1
            folders[item.shoe] = folders.get(item.shoe, 0) + 1
            score_names.update(item.scores or {})
        if reason := one("reason"):
            items = [i for i in items if any(r.get("rule") == reason for r in i.reasons)]
        if one("folder") or "folder" in query:
            items = [i for i in items if i.shoe == one("folder")]
        sort = one("sort", "informative")
        if sort == "informative":
            items = informative_order(items, self.server.queue.accepted_per_shoe())
        elif sort != "id":
            name, _, direction = sort.partition(":")
            if name not in score_names or direction not in ("asc", "desc"):
                raise BadRequest(f"sort must be informative, id or SCORE:asc|desc with a score of these items, not "
                                 f"{sort[:60]!r}")
            # items without that score go last either way
            items.sort(key=lambda i: (name not in (i.scores or {}),
                                      (-1 if direction == "desc" else 1) * float((i.scores or {}).get(name, 0))))
        per_page = min(max(_int(one("per_page", str(PER_PAGE)), "per_page"), 1), 500)
        pages = max(1, -(-len(items) // per_page))
        page = min(max(_int(one("page", "1"), "page"), 1), pages)
        shown = items[(page - 1) * per_page: page * per_page]
        return {"items": [_public(i) for i in shown], "total": len(items), "page": page, "pages": pages,
                "per_page": per_page, "counts": self.server.queue.counts(), "decided_here": self.server.decided_here,
                "can_undo": bool(self.server.history),
                "facets": {"reasons": dict(sorted(reasons.items())), "folders": dict(sorted(folders.items())),
                           "scores": sorted(score_names)}}

    def _image(self, item_id: int, match: bool = False) -> None:
        try:
            item = self.server.queue.get(item_id)
        except KeyError:
            return self._json({"error": f"no image {item_id}"}, 404)
        if match:
            found = self.server.queue.duplicate_path(item.duplicate_of) if item.duplicate_of else None
            candidates = [found] if found else []
        else:
            candidates = [item.stored_path, item.source]
        for candidate in candidates:
            if candidate and Path(candidate).is_file() and not Path(candidate).is_symlink():
                kind = mimetypes.guess_type(str(candidate))[0] or "application/octet-stream"
                if not kind.startswith("image/"):
                    kind = "application/octet-stream"
                return self._send(200, Path(candidate).read_bytes(), kind)
        self._json({"error": f"image {item_id}: file is gone"}, 410)

    def _body(self) -> dict:
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise BadRequest("a Content-Length header is required")
        if not raw.strip().isascii() or not raw.strip().isdigit():
            raise BadRequest(f"Content-Length must be a whole number of bytes, not {raw[:40]!r}")
        length = int(raw)
        if length > MAX_BODY:
            raise BadRequest(f"request too large ({length} bytes; at most {MAX_BODY})")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BadRequest(f"the body is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _post(self) -> None:
        if self.path not in ("/api/decide", "/api/undo"):
            return self._json({"error": "not found"}, 404)
        if not secrets.compare_digest(self.headers.get("X-Review-Token", "").encode("utf-8", "replace"),
                                      self.server.token.encode()):
            return self._json({"error": "missing or wrong review token"}, HTTPStatus.FORBIDDEN)
        body = self._body()
        if self.path == "/api/undo":
            return self._undo()
        decision = body.get("decision")
        if decision not in ("accept", "reject"):
            raise BadRequest(f"decision must be accept or reject, not {str(decision)[:40]!r}")
        label = body.get("label")
        if label is not None and (not isinstance(label, str) or not 0 < len(label) <= 300 or decision != "accept"):
            raise BadRequest("label must be a shoe folder name (or 'suggested'), given with decision accept")
        if "ids" in body:
            if not isinstance(body["ids"], list) or not 0 < len(body["ids"]) <= MAX_BULK:
                raise BadRequest(f"ids must be a list of 1 to {MAX_BULK} image ids")
            ids = [parse_id(i) for i in body["ids"]]
        else:
            ids = [parse_id(body.get("id"))]
        results = [self._decide(i, decision, label) for i in ids]
        ok = [r for r in results if "item" in r]
        answer = {"results": results, "counts": self.server.queue.counts(), "decided_here": self.server.decided_here}
        if "ids" not in body:          # one item: its result at the top level, as before
            if not ok:
                return self._json({"error": results[0]["error"]}, 400)
            answer["item"] = ok[0]["item"]
        self._json(answer)

    def _decide(self, item_id: int, decision: str, label: str | None = None) -> dict:
        try:
            with self.server.lock:
                item = self.server.queue.decide(item_id, decision, reviewer="review-page", label=label)
                self.server.decided_here += 1
                self.server.history.append(item.id)
            return {"id": item_id, "item": _public(item)}
        except (KeyError, ValueError, TypeError, OSError) as exc:
            return {"id": item_id, "error": str(exc).strip("'\"")}

    def _undo(self) -> None:
        with self.server.lock:
            if not self.server.history:
                return self._json({"error": "nothing to undo: no decision was made on this page"}, 409)
            item_id = self.server.history[-1]
            try:
                item = self.server.queue.reopen(item_id)
            except (KeyError, ValueError, OSError) as exc:
                self.server.history.pop()
                return self._json({"error": str(exc).strip("'\"")}, 409)
            self.server.history.pop()
            self.server.decided_here -= 1
        self._json({"item": _public(item), "counts": self.server.queue.counts(),
                    "decided_here": self.server.decided_here, "can_undo": bool(self.server.history)})


def _int(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadRequest(f"{name} must be a small whole number, not {text[:40]!r}")
    return int(text)


def _public(item) -> dict:
    d = item.as_dict()
    d["image_url"] = f"/image/{item.id}"
    d["file"] = Path(item.source).name
    d["folder_warning"] = folder_warning(item.shoe)
    if item.duplicate_of:
        d["match_url"] = f"/image/{item.id}/match"
    # the label one click files it under: the model's suggestion, else its top guess, when not its own folder
    offer = item.suggested or next((g["shoe"] for g in item.guesses if g.get("shoe")), None)
    d["offer"] = offer if offer and offer != item.folder else None
    d.pop("stored_path", None)
    return d


def page_html(token: str, human_rules) -> str:
    rules = "".join(f"<li>{html.escape(r)}</li>" for r in human_rules)
    return PAGE.replace("__TOKEN__", json.dumps(token)).replace("__RULES__", rules)


FORBIDDEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shoefind review</title></head>
<body><h1>Open the review page through its link</h1>
<p>This page needs the address with <code>?token=...</code> that <code>shoefind review</code> printed.</p>
</body></html>"""


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shoefind review</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 *{box-sizing:border-box}
 body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
 header{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}
 h1{margin:.2em 0}
 #progress{font-size:1.2em;font-weight:bold}
 progress{width:300px;max-width:100%}
 .keys kbd{border:1px solid #999;border-radius:3px;padding:0 4px;background:#fff}
 #toolbar{display:flex;flex-wrap:wrap;gap:.6em 1em;align-items:center;margin:1em 0 .5em;padding:.6em;
          background:#fff;border:1px solid #ddd;border-radius:6px;position:sticky;top:0;z-index:2}
 #toolbar label{font-size:.9em}
 #toolbar select{max-width:16em}
 #pager{margin-left:auto}
 #grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px}
 .card{background:#fff;border:3px solid #ddd;border-radius:6px;padding:6px;min-width:0;overflow:hidden;position:relative}
 .card.current{border-color:#1565c0;box-shadow:0 0 0 2px #90caf9}
 .card.selected{background:#e3f2fd}
 .card.accepted{border-color:#2e7d32}.card.rejected{border-color:#c62828}
 .card.accepted img,.card.rejected img{opacity:.55}
 .card.pair{grid-column:span 2}
 .images{display:flex;gap:6px}
 .images figure{flex:1;min-width:0;margin:0}
 .images figcaption{font-size:.75em;color:#555;text-align:center}
 .card img{width:100%;height:190px;object-fit:contain;background:#eee;display:block}
 .shoe{font-weight:bold;overflow-wrap:anywhere;word-break:break-word}
 .file,.reason{font-size:.85em;color:#555;overflow-wrap:anywhere;word-break:break-word}
 .score{font-size:.8em;color:#777;overflow-wrap:anywhere}
 .guesses{font-size:.8em;color:#1a4d8f;overflow-wrap:anywhere}
 .badge{display:inline-block;font-size:.75em;padding:1px 6px;border-radius:9px;margin:2px 0;overflow-wrap:anywhere}
 .badge.warn{background:#fff3cd;color:#7a5a00;border:1px solid #e0c060}
 .badge.status{background:#eee}
 .select{position:absolute;top:10px;left:10px;width:20px;height:20px;z-index:1}
 .actions{margin-top:4px}
 button{margin-right:4px}
 #empty{color:#777;margin:2em 0}
</style></head><body>
<header>
 <div><h1>Review queue</h1>
  <div id="progress">loading...</div><progress id="bar" value="0" max="1"></progress>
  <p class="keys"><kbd>A</kbd> accept &nbsp; <kbd>R</kbd> reject &nbsp; <kbd>&larr;</kbd>/<kbd>&rarr;</kbd>
   or <kbd>J</kbd>/<kbd>K</kbd> move &nbsp; <kbd>S</kbd> accept as the model suggests &nbsp;
   <kbd>Space</kbd> select &nbsp; <kbd>U</kbd> undo &nbsp;
   <kbd>N</kbd>/<kbd>P</kbd> page</p></div>
 <div><h2>Accept a photo only if</h2><ul id="rules">__RULES__</ul></div>
</header>
<div id="toolbar">
 <label>Status <select id="f-status"><option value="review">waiting</option><option value="accepted">accepted</option>
   <option value="rejected">rejected</option><option value="all">all</option></select></label>
 <label>Reason <select id="f-reason"><option value="">any</option></select></label>
 <label>Folder <select id="f-folder"><option value="">any</option></select></label>
 <label>Sort <select id="f-sort"><option value="informative">most informative first</option><option value="id">queue order</option></select></label>
 <label><input type="checkbox" id="select-page"> select page</label>
 <button id="bulk-accept" disabled>Accept selected</button>
 <button id="bulk-reject" disabled>Reject selected</button>
 <button id="undo" disabled>Undo last</button>
 <span id="pager"><button id="prev">&lsaquo; Prev</button> <span id="page-info"></span>
   <button id="next">Next &rsaquo;</button></span>
</div>
<div id="grid"></div><div id="empty" hidden>Nothing matches these filters.</div>
<script>
const TOKEN = __TOKEN__;
const HEADERS = {'Content-Type':'application/json','X-Review-Token':TOKEN};
let items = [], current = 0, page = 1, pages = 1, decided = 0, counts = {}, selected = new Set();
const $ = id => document.getElementById(id);
function el(tag, cls, text){const e=document.createElement(tag); if(cls)e.className=cls; if(text!==undefined)e.textContent=text; return e;}
function query(){
  const q = new URLSearchParams({status:$('f-status').value, sort:$('f-sort').value, page});
  if ($('f-reason').value) q.set('reason', $('f-reason').value);
  if ($('f-folder').value !== '') q.set('folder', $('f-folder').value);
  return q;
}
function fillSelect(sel, options, keep){
  const now = sel.value; const first = sel.options[0].cloneNode(true); sel.innerHTML = ''; sel.appendChild(first);
  options.forEach(([value, label]) => { const o = el('option', '', label); o.value = value; sel.appendChild(o); });
  sel.value = options.some(([v]) => v === now) ? now : first.value;
}
async function load(keepCurrent){
  const r = await fetch('/api/queue?' + query()); const data = await r.json();
  if (!r.ok){ alert(data.error); return; }
  items = data.items; page = data.page; pages = data.pages; counts = data.counts; decided = data.decided_here;
  fillSelect($('f-reason'), Object.entries(data.facets.reasons).map(([k,v]) => [k, k + ' (' + v + ')']));
  fillSelect($('f-folder'), Object.entries(data.facets.folders).map(([k,v]) => [k, (k || '(no folder)') + ' (' + v + ')']));
  fillSelect($('f-sort'), [['id', 'queue order']].concat(data.facets.scores.flatMap(s => [[s + ':desc', s + ' score, high first'], [s + ':asc', s + ' score, low first']])));
  $('undo').disabled = !data.can_undo;
  if (!keepCurrent) current = 0;
  current = Math.min(current, Math.max(items.length - 1, 0));
  $('page-info').textContent = 'page ' + page + ' of ' + pages + ' (' + data.total + ' images)';
  render();
}
function card(it, i){
  const c = el('div', 'card' + (i===current?' current':'') + (it.status!=='review'?' '+it.status:'')
                + (selected.has(it.id)?' selected':'') + (it.match_url?' pair':''));
  c.id = 'item-' + it.id; c.dataset.id = it.id;
  const box = el('input', 'select'); box.type = 'checkbox'; box.checked = selected.has(it.id); box.title = 'select';
  box.onchange = () => { box.checked ? selected.add(it.id) : selected.delete(it.id); render(); };
  c.appendChild(box);
  const imgs = el('div', 'images');
  const fig = el('figure'); const img = el('img'); img.loading = 'lazy'; img.src = it.image_url; img.alt = it.file;
  fig.appendChild(img);
  if (it.match_url){
    fig.appendChild(el('figcaption', '', 'this image'));
    const fig2 = el('figure', 'match'); const m = el('img'); m.loading = 'lazy'; m.src = it.match_url; m.alt = 'its possible duplicate';
    fig2.appendChild(m); fig2.appendChild(el('figcaption', '', 'its possible duplicate')); imgs.appendChild(fig); imgs.appendChild(fig2);
  } else imgs.appendChild(fig);
  c.appendChild(imgs);
  c.appendChild(el('div','shoe', (it.label || it.shoe) || '(no shoe folder)'));
  if (it.intended && it.intended !== (it.label || it.shoe)) c.appendChild(el('div','file', 'crawled for ' + it.intended));
  if ((it.guesses||[]).length){
    const g = el('div','guesses', 'model ' + (it.triaged_by || '') + ': ');
    it.guesses.forEach((x, j) => { g.appendChild(el('span', 'guess', (j ? ', ' : '') + x.shoe + ' ' + Number(x.probability).toFixed(2))); });
    c.appendChild(g);
  }
  if (it.folder_warning){ const b = el('span', 'badge warn', '\u26a0 ' + it.folder_warning); b.title = it.folder_warning; c.appendChild(b); }
  c.appendChild(el('div','file', it.file));
  (it.reasons||[]).forEach(r => c.appendChild(el('div','reason', r.rule + ': ' + r.reason)));
  const s = Object.entries(it.scores||{}).map(([k,v]) => k + ' ' + Number(v).toFixed(2)).join(', ');
  if (s) c.appendChild(el('div','score', s));
  const actions = el('div', 'actions');
  if (it.offer){
    const s = el('button','accept-as','Accept as ' + it.offer); s.title = 'file it under ' + it.offer + ' (S)';
    s.onclick = () => {current=i; decide('accept', it.offer);};
    actions.appendChild(s);
  }
  const a = el('button','accept','Accept'); a.onclick = () => {current=i; decide('accept');};
  const r = el('button','reject','Reject'); r.onclick = () => {current=i; decide('reject');};
  if (it.status === 'review'){ actions.appendChild(a); actions.appendChild(r); }
  else { actions.appendChild(el('span','badge status', it.status));
         if (it.status === 'rejected') actions.appendChild(a); else actions.appendChild(r); }
  c.appendChild(actions);
  c.onclick = (ev) => { if(!['BUTTON','INPUT'].includes(ev.target.tagName)){current=i; render();} };
  return c;
}
function render(){
  const grid = $('grid'); grid.innerHTML = '';
  items.forEach((it, i) => grid.appendChild(card(it, i)));
  $('empty').hidden = items.length > 0;
  const total = decided + (counts.review || 0);
  $('progress').textContent = decided + ' of ' + total + ' decided';
  const bar = $('bar'); bar.max = Math.max(total, 1); bar.value = decided;
  $('bulk-accept').disabled = $('bulk-reject').disabled = selected.size === 0;
  $('bulk-accept').textContent = 'Accept selected (' + selected.size + ')';
  $('bulk-reject').textContent = 'Reject selected (' + selected.size + ')';
  $('select-page').checked = items.length > 0 && items.every(it => selected.has(it.id));
  $('prev').disabled = page <= 1; $('next').disabled = page >= pages;
  const cur = document.querySelector('.card.current'); if (cur) cur.scrollIntoView({block:'nearest'});
}
async function post(path, body){
  const r = await fetch(path, {method:'POST', headers:HEADERS, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok){ alert(data.error); return null; }
  return data;
}
function applied(data){
  counts = data.counts; decided = data.decided_here; $('undo').disabled = false;
  (data.results || []).forEach(res => {
    const k = items.findIndex(x => x.id === res.id);
    if (res.item && k >= 0) items[k] = res.item;
  });
}
async function decide(decision, label){
  const it = items[current]; if (!it || (it.status === decision + 'ed' && !label)) return;
  const body = {id: it.id, decision}; if (label) body.label = label;
  const data = await post('/api/decide', body); if (!data) return;
  applied(data);
  const next = items.findIndex((x, j) => j > current && x.status === 'review');
  if (next >= 0) current = next;
  render();
  document.body.dataset.lastDecision = it.id + ':' + data.item.status;
}
async function bulk(decision){
  if (!selected.size) return;
  const data = await post('/api/decide', {ids: [...selected], decision}); if (!data) return;
  applied(data);
  const failed = data.results.filter(r => r.error);
  selected = new Set(failed.map(r => r.id));
  render();
  if (failed.length) alert(failed.map(r => r.id + ': ' + r.error).join('\\n'));
  document.body.dataset.lastBulk = data.results.length - failed.length + ':' + decision;
}
async function undo(){
  const data = await post('/api/undo', {}); if (!data) return;
  counts = data.counts; decided = data.decided_here; $('undo').disabled = !data.can_undo;
  const k = items.findIndex(x => x.id === data.item.id);
  if (k >= 0){ items[k] = data.item; current = k; }
  render();
  document.body.dataset.lastUndo = String(data.item.id);
}
function go(p){ page = Math.min(Math.max(p, 1), pages); load(); }
['f-status','f-reason','f-folder','f-sort'].forEach(id => $(id).onchange = () => { page = 1; selected.clear(); load(); });
$('prev').onclick = () => go(page - 1); $('next').onclick = () => go(page + 1);
$('bulk-accept').onclick = () => bulk('accept'); $('bulk-reject').onclick = () => bulk('reject');
$('undo').onclick = undo;
$('select-page').onchange = ev => { items.forEach(it => ev.target.checked ? selected.add(it.id) : selected.delete(it.id)); render(); };
document.addEventListener('keydown', ev => {
  if (['INPUT','SELECT','TEXTAREA'].includes(ev.target.tagName) && ev.key !== ' ') return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const k = ev.key.toLowerCase();
  if (k === 'a') decide('accept');
  else if (k === 's') { const it = items[current]; if (it && it.offer) decide('accept', it.offer); }
  else if (k === 'r' || k === 'x') decide('reject');
  else if (k === 'u') undo();
  else if (k === ' ') { ev.preventDefault(); const it = items[current]; if (it){ selected.has(it.id) ? selected.delete(it.id) : selected.add(it.id); render(); } }
  else if (k === 'arrowright' || k === 'k') { current = Math.min(current+1, items.length-1); render(); }
  else if (k === 'arrowleft' || k === 'j') { current = Math.max(current-1, 0); render(); }
  else if (k === 'n' && page < pages) go(page + 1);
  else if (k === 'p' && page > 1) go(page - 1);
});
load();
</script></body></html>
"""
