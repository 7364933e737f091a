"""The retrieve stage as the CLI, the flows and the web page run it: the model and the catalog
(kept loaded per process), then answers for photos."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Callable, Literal, Optional, Sequence, Union

from pydantic import BeforeValidator, Field

from shoefind.stages.request import (ImageLoading, Cli, DataDir, Device, Fallback, FilterAttributes, Prompts, Request, Runtime,
                                     Text, Vocabulary, direct, model_field)


def _as_list(value):
    """One path, or several: always a list."""
    return [value] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def open_model_and_catalog(model: str | None, dataset: str | os.PathLike, data_dir: str | os.PathLike,
                           runtime: str | None = None, device: str | None = None,
                           progress: Callable[[int], None] | None = None):
    """(encoder, catalog): photos of the catalog not seen before are embedded first. Without a model
    given, the dataset's current model (model registry) when it has one, else the default model."""
    from shoefind.encoders.load import load_encoder
    from shoefind.features.catalog import open_catalog
    from shoefind.stages.features import model_options
    if model is None:
        from shoefind.registry.current import current_spec
        model = current_spec(data_dir, Path(dataset).expanduser())
    encoder = load_encoder(model, **model_options(runtime, device))
    return encoder, open_catalog(encoder, Path(dataset), data_dir, progress=progress)


def infer_photos(photos: Sequence[str | os.PathLike], dataset: str | os.PathLike, data_dir: str | os.PathLike,
                 model: str | None = None, change: str | None = None, method: str = "auto",
                 change_method: str = "constraints", k: int = 5, results: int = 10,
                 text_weight: float | None = None, runtime: str | None = None, device: str | None = None,
                 zeroshot: dict | None = None, progress=None) -> dict:
    """Answers for every photo (a folder stands for its photos); an unusable photo gets an `error`.
    `zeroshot`: the zero-shot options (prompt set, vocabulary, filter, fallback) as a dict."""
    from shoefind.retrieve.answer import answer_photos, expand_photos
    from shoefind.scoring.zeroshot import ZeroShotOptions
    from shoefind.stages.phases import phase
    options = ZeroShotOptions.of(zeroshot)
    paths = expand_photos(photos)
    with phase("loading the model and the catalog (photos not seen before are embedded)", progress):
        encoder, catalog = open_model_and_catalog(model, dataset, data_dir, runtime, device)
    advance = progress("identifying photos", len(paths)) if progress and len(paths) > 1 else None
    return answer_photos(encoder, catalog, paths, change=change, method=method, change_method=change_method,
                         k=k, results=results, text_weight=text_weight, options=options, progress=advance)


class InferRequest(Request):
    image: Annotated[Union[str, list[str]], BeforeValidator(_as_list), Field(
        description="photos, or folders of photos (paths on the machine that runs the stage)"),
                     Cli(argument=True, cli_type=list[str])]
    change: Annotated[Text, Field(description='a change in words, e.g. "same brand but red"')] = None
    dataset: Annotated[Text, Field(description="the catalog: a labeled photo folder, one subfolder per shoe "
                                               "(default: DATA_DIR/images)"), Cli(("--dataset", "-d"))] = None
    model: model_field("the model that identifies the photos (with its learned classifiers, if `learn` saved any)"
                       ) = None
    data_dir: DataDir = None
    method: Annotated[str, Field(description="identification: auto (best available), zeroshot, nearest, learned, or "
                                             "a learned one (fewshot, coop, ...)")] = "auto"
    change_method: Annotated[Literal["constraints", "fusion", "baseline"], Field(
        description="how a change in words is applied")] = "constraints"
    text_weight: Annotated[Optional[Annotated[float, Field(ge=0, le=1)]], BeforeValidator(
        lambda v: None if v in ("", None) else v), Field(
        description="weight of the text against the photo (default: the rules')")] = None
    k: Annotated[int, Field(ge=1, le=1000, description="how many catalog shoes to list"), Cli(("-k",))] = 5
    results: Annotated[int, Field(ge=1, le=1000, description="how many changed shoes to list")] = 10
    runtime: Runtime = None
    device: Device = None
    prompts: Prompts = None
    vocabulary: Vocabulary = None
    filter_attributes: FilterAttributes = None
    fallback: Fallback = None
    image_loading: ImageLoading = None

    def catalog_paths(self) -> tuple[str, str]:
        """(catalog folder, data folder); a missing catalog is refused before the model loads."""
        from shoefind.errors import PathNotFound
        dataset, data_dir = self.paths()
        if not Path(dataset).is_dir():
            raise PathNotFound(f"catalog folder {dataset} does not exist: pass --dataset DIR (a labeled photo folder) "
                               "or put photos in DATA_DIR/images")
        return dataset, data_dir


def infer(request: InferRequest, step=direct, progress=None, log: Callable[[str], None] | None = None) -> dict:
    """The infer stage: answers for every photo (a folder stands for its photos); an unusable photo
    gets an `error`, the rest are answered."""
    dataset, data_dir = request.catalog_paths()
    return step("infer", infer_photos, request.image, dataset, data_dir, request.model_text(), request.change,
                request.method, request.change_method, request.k, request.results, request.text_weight,
                request.runtime, request.device, request.zeroshot(), progress=progress)
