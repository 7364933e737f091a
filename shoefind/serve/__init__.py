"""`shoefind serve`: an HTTP API (JSON) that keeps the model and the catalog warm.

- service.py: WarmService, the model and catalog held in one process, answering through the same
  library calls as `infer`, `search` and the web page (shoefind.retrieve);
- uploads.py: size and pixel limits for uploaded photos, and the HTTP status of each refusal;
- auth.py: the optional bearer token (required when bound beyond loopback) and the host check;
- app.py: the ASGI app (FastAPI: routes, OpenAPI docs at /docs, errors as {"error": "..."});
- server.py: binding a socket and running the app under uvicorn.
"""
