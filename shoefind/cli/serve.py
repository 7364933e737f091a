"""`shoefind serve`: the HTTP API (shoefind.serve), with the model and the catalog kept warm.

Options are checked and the port is bound before the model loads, so a bad option or a taken
port is one line at once; then the catalog is opened (new photos embedded) and the server runs
until Ctrl-C.
"""
from __future__ import annotations

import typer

from shoefind.cli import options as o
from shoefind.cli.common import err, warn_random
from shoefind.cli.infer import _catalog_folder


def serve(dataset: o.DatasetOpt = None, model: o.Model = None, data_dir: o.DataDir = None,
          host: o.Host = "127.0.0.1", port: o.ServePort = 8000, token: o.Token = None,
          method: str = typer.Option("auto", help="identification: auto (best available), zeroshot, or a learned "
                                                  "one (fewshot, coop, ...); a request may name another"),
          max_upload_mb: o.MaxUploadMb = 20.0, max_pixels: o.MaxPixels = 40_000_000,
          runtime: o.RuntimeOpt = None, device: o.DeviceOpt = None, prompts: o.Prompts = None,
          vocabulary: o.Vocabulary = None, filter_attributes: o.FilterAttributes = None,
          fallback: o.Fallback = None):
    """Serve the catalog as an HTTP API (JSON): identify, change in words, search, model info; docs at /docs."""
    from shoefind.serve.server import serve as run_server
    from shoefind.serve.uploads import UploadLimits
    root, d = _catalog_folder(dataset, data_dir)
    zeroshot = o.zeroshot(prompts, vocabulary, filter_attributes, fallback)
    limits = UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024), max_pixels=max_pixels)

    def open_service():
        from shoefind.serve.service import WarmService
        with err.status("loading the model and the catalog (photos not seen before are embedded), then warming up"):
            service = WarmService.open(model, root, d, runtime, device, method=method, zeroshot=zeroshot)
        if service.encoder.is_random:
            warn_random(service.encoder.model_id)
        cat = service.catalog
        err.print(f"model {service.encoder.model_id}; catalog {cat.root} ({len(cat.shoes)} shoes, "
                  f"{len(cat.photos)} photos)", highlight=False, soft_wrap=True)
        return service

    run_server(open_service, host=host, port=port, token=token, limits=limits,
               say=lambda line: err.print(line, highlight=False, soft_wrap=True))
