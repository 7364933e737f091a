"""The HTTP API (FastAPI): routes over a WarmService, OpenAPI docs at /docs.

Every error is JSON `{"error": "one sentence"}` with its status: 400 bad request, 401 no or wrong
token, 404 no such catalog photo, 413 too many bytes or pixels, 415 not an image, 422 a damaged
image or an invalid field, 500 a bug (logged with its traceback).
"""
from __future__ import annotations

import contextlib
import logging
import mimetypes
from typing import Annotated, Literal, Optional

import anyio.to_thread
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from shoefind.errors import UserError
from shoefind.serve.auth import is_loopback, token_matches
from shoefind.serve.service import WarmService, check_filters
from shoefind.serve.uploads import Refused, UploadLimits, check_upload, too_large

log = logging.getLogger("shoefind.serve")

ChangeMethod = Literal["constraints", "fusion", "baseline"]
REQUEST_THREADS = 8        # enough to keep every model run busy with photos decoded ahead

DESCRIPTION = """Identify shoes from photos against one catalog, change them in words, search the catalog
by text. The model and the catalog stay loaded: a request costs its answer only.

Every identification says how near the photo is to the catalog (`open_set.nearest_similarity`,
the cosine to its nearest catalog photo) against the catalog's threshold; below it,
`not_in_catalog` is true, `message` says "not like any shoe in this catalog" and `suggestions`
names the nearest shoes. A catalog photo's id is its sha256 or its `path` as answers give it.

Errors are `{"error": "..."}`: 400 bad request, 401 token, 404 no such catalog photo, 413 too
large (bytes or pixels), 415 not an image, 422 damaged image or invalid field."""


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware in front of every route: the Host check on loopback, and the body size limit,
    counted as the body arrives (an oversized upload is cut off, never spooled to disk)."""

    def __init__(self, app, limits: UploadLimits, loopback_only: bool):
        self.app, self.limits, self.loopback_only = app, limits, loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback_only and not _loopback_host(headers.get("host", "")):
            return await error(400, "this API answers only requests addressed to localhost or 127.0.0.1 "
                                    f"(Host: {headers.get('host', '')[:80]})")(
                scope, receive, send)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limits.max_body):
            if not length.isdigit():
                return await error(400, f"Content-Length '{length[:40]}' is not a number")(scope, receive, send)
            return await error(413, str(too_large(self.limits, int(length))))(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limits.max_body:
                    raise HTTPException(413, str(too_large(self.limits)))
            return message
        await self.app(scope, counted, send)


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("["):          # [::1]:8000
        name = host[1:].split("]", 1)[0]
    return is_loopback(name) if name else False


def create_app(service: WarmService, token: str | None = None, limits: UploadLimits | None = None,
               loopback_only: bool = True, threads: int = REQUEST_THREADS) -> FastAPI:
    """The API over `service`. token: required from every client (except /health and the docs) when
    given; loopback_only: the server is bound to loopback, so requests must be addressed to it;
    threads: requests computed at once (the others wait their turn without a thread)."""
    limits = limits or UploadLimits()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # a thread per waiting request would only add memory (each grows its own allocator arena)
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(title="shoefind", version="1", description=DESCRIPTION, lifespan=lifespan)
    bearer = HTTPBearer(auto_error=False, description="the token `shoefind serve` was started with")

    def authorized(request: Request, _credentials=Depends(bearer)) -> None:
        if token is None:
            return
        header = request.headers.get("authorization")
        if not token_matches(header, token):
            said = "a bearer token is required: send 'Authorization: Bearer TOKEN'" if not header else \
                "the bearer token is not this server's"
            raise HTTPException(401, said, headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if token is not None else []
    app.add_middleware(Guard, limits=limits, loopback_only=loopback_only)

    @app.exception_handler(Refused)
    async def refused(_request, exc: Refused):
        return error(exc.status, str(exc))

    @app.exception_handler(UserError)
    async def user_error(_request, exc: UserError):
        return error(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        problems = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())[1:]) or "request",
                                    e.get("msg", "invalid")) for e in exc.errors()]
        return error(422, "; ".join(problems))

    @app.exception_handler(Exception)
    async def bug(_request, exc: Exception):
        log.exception("a request failed")
        return error(500, f"internal error ({type(exc).__name__}): this is a bug in shoefind, please report it")

    def read_upload(photo: UploadFile | None) -> bytes | None:
        if photo is None:
            return None
        data = photo.file.read(limits.max_bytes + 1)
        check_upload(data, limits)
        return data

    @app.get("/health", summary="Is the server up (no token needed)")
    def health() -> JSONResponse:
        return JSONResponse(service.health())

    @app.get("/model", summary="The model, the catalog, the identification method and the open-set threshold",
             dependencies=guarded)
    def model() -> JSONResponse:
        return JSONResponse(service.model_info() | {"limits": limits.describe()})

    @app.post("/identify", summary="Which catalog shoe is this photo (an upload or a catalog photo)",
              dependencies=guarded)
    def identify(photo: Annotated[Optional[UploadFile], File(description="the photo (JPEG, PNG, WebP...)")] = None,
                 catalog_id: Annotated[Optional[str], Form(description="or a catalog photo: its sha256 or path")] = None,
                 k: Annotated[int, Form(ge=1, le=50, description="how many catalog shoes to list")] = 5,
                 neighbours: Annotated[int, Form(ge=0, le=50, description="nearest catalog photos to list")] = 5,
                 method: Annotated[Optional[str], Form(description="auto, zeroshot, fewshot, coop, learned, "
                                                                   "nearest (default: the server's)")] = None
                 ) -> JSONResponse:
        return JSONResponse(service.identify(read_upload(photo), catalog_id, k=k, neighbours=neighbours,
                                             method=method or None))

    @app.post("/change", summary="Catalog shoes like this photo, changed as the words say", dependencies=guarded)
    def change(words: Annotated[str, Form(description='the change, e.g. "same brand but red"')],
               photo: Annotated[Optional[UploadFile], File(description="the photo")] = None,
               catalog_id: Annotated[Optional[str], Form(description="or a catalog photo: its sha256 or path")] = None,
               change_method: Annotated[ChangeMethod, Form(description="how the change is applied")] = "constraints",
               results: Annotated[int, Form(ge=1, le=100, description="how many changed shoes to list")] = 10,
               text_weight: Annotated[Optional[float], Form(ge=0.0, le=1.0, description="text against photo")] = None
               ) -> JSONResponse:
        return JSONResponse(service.change(words, read_upload(photo), catalog_id, change_method=change_method,
                                           results=results, text_weight=text_weight))

    @app.get("/search", summary="Catalog shoes matching words, with optional attribute filters", dependencies=guarded)
    def search(q: Annotated[str, Query(min_length=1, max_length=500, description='e.g. "white high-top"; '
                                                                                  '"-red" pushes red away')],
               brand: Annotated[Optional[str], Query(description="only this brand")] = None,
               color: Annotated[Optional[str], Query(description="only this colour")] = None,
               top: Annotated[Optional[str], Query(description="only this top height (high, mid, low)")] = None,
               sole: Annotated[Optional[str], Query(description="only this sole")] = None,
               k: Annotated[int, Query(ge=1, le=100, description="how many shoes to list")] = 10) -> JSONResponse:
        filters = check_filters({"brand": brand, "color": color, "hightop": top, "sole": sole})
        return JSONResponse(service.search(q, filters, k=k))

    @app.get("/photos/{photo_id:path}", summary="A catalog photo's file, by sha256 or path", dependencies=guarded,
             response_class=FileResponse)
    def photo_file(photo_id: str):
        path = service.photo_file(photo_id)
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    return app
