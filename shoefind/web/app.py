"""The shoefind web page (Streamlit): photo in, shoe out; then change it in words.

Run with `shoefind web` (127.0.0.1). Settings come from the environment that command sets:
SHOEFIND_MODEL, SHOEFIND_DATA, SHOEFIND_WEB_DATASET (the catalog folder, default DATA_DIR/images).
Every expected failure (bad photo, unknown model, empty catalog) is one message on the page;
the server keeps serving.
"""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # `streamlit run` starts outside the repo

from shoefind.features.catalog import EmptyCatalog, open_catalog  # noqa: E402
from shoefind.scoring.change_words import ATTRIBUTE_NAMES  # noqa: E402
from shoefind.settings import current  # noqa: E402
from shoefind.images import ImageError, open_image  # noqa: E402
from shoefind.retrieve.answer import answer_photos  # noqa: E402
from shoefind.encoders.base import ModelUnavailable  # noqa: E402
from shoefind.encoders.load import load_model
from shoefind.retrieve.compose import METHODS  # noqa: E402
from shoefind.retrieve.text_search import search_catalog  # noqa: E402

GRID_COLUMNS = 4


def warm_model_and_catalog(spec: str | None, dataset: str, data_dir: str):
    """Both are kept per process by shoefind (the catalog is reopened when its folder changes)."""
    with st.spinner("loading the model and the catalog (new photos are embedded once)"):
        if spec is None:    # the dataset's current model (model registry), when it has one
            from shoefind.registry.current import current_spec
            spec = current_spec(data_dir, dataset)
        encoder = load_model(spec)
        return encoder, open_catalog(encoder, dataset, data_dir)


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(path: str, size: int = 320):
    img = open_image(path, size_hint=size)
    img.thumbnail((size, size))
    return img


def settings() -> tuple[str | None, str, str]:
    given = current()
    return given.model, str(given.web_dataset or given.layout.images), str(given.data_dir)


def set_query(kind: str, value, label: str) -> None:
    st.session_state["query"] = {"kind": kind, "value": value, "label": label}


# The upload cap, kept by the page itself too: `streamlit run` started without shoefind's
# --server.maxUploadSize (or .streamlit/config.toml) would otherwise take 200 MB.
MAX_UPLOAD_MB = 50


def on_upload() -> None:
    upload = st.session_state.get("upload")
    if upload is not None:
        if upload.size > MAX_UPLOAD_MB * 1024 * 1024:
            st.session_state["upload_refused"] = (f"{upload.name} is {upload.size / 2**20:.0f} MB: "
                                                  f"photos up to {MAX_UPLOAD_MB} MB are accepted")
            return
        st.session_state.pop("upload_refused", None)
        set_query("upload", upload.getvalue(), upload.name)


def on_pick() -> None:
    path = st.session_state.get("pick")
    if path:
        set_query("catalog", path, Path(path).parent.name + "/" + Path(path).name)


def sidebar(catalog) -> dict:
    with st.sidebar:
        st.header("Photo")
        st.file_uploader(f"Upload a shoe photo (up to {MAX_UPLOAD_MB} MB)", key="upload", on_change=on_upload)
        if refused := st.session_state.get("upload_refused"):
            st.error(refused)
        paths = catalog.photos["path"].tolist()
        st.selectbox("or pick a catalog photo", [""] + paths, key="pick", on_change=on_pick,
                     format_func=lambda p: Path(p).parent.name[:60] + " / " + Path(p).name if p else "")
        st.header("Results")
        options = {"method": st.radio("change method", METHODS, horizontal=True,
                                      help="constraints: reads the change into filters; fusion: photo + text; "
                                           "baseline: identified name + text"),
                   "text_weight": st.slider("text weight", 0.0, 1.0, 0.5, 0.05),
                   "count": st.slider("results", 4, 24, 8, 4)}
        filters = {}
        for attr in catalog.attributes:
            values = sorted(set(catalog.shoes[attr].astype(str)) - {""})
            filters[attr] = st.multiselect(f"only {ATTRIBUTE_NAMES[attr]}", values, key=f"filter-{attr}")
        options["filters"] = {a: v for a, v in filters.items() if v}
        return options


def show_identification(answer: dict) -> None:
    shoe = answer["shoe"]
    closeness = answer.get("open_set") or {}
    if answer.get("not_in_catalog"):
        # a photo far from every catalog photo: no name is claimed, the nearest shoes are suggestions
        st.subheader("Not like any shoe in this catalog")
        st.warning(f"The nearest catalog photo has similarity {closeness['nearest_similarity']:.2f}, below this "
                   f"catalog's threshold {closeness['threshold']:.2f}. Nearest shoes: "
                   + ", ".join(answer.get("suggestions", [])), icon=":material/help:")
    else:
        st.subheader(f"Identified: {shoe['shoe']}")
    st.caption(f"{shoe['probability']:.0%} · method {answer['method']}: {answer.get('method_description', '')}"
               + (f" · nearest catalog photo {closeness['nearest_similarity']:.2f}" if closeness else ""))
    if answer.get("method_note"):
        st.warning(answer["method_note"], icon=":material/info:")
    if labeled := answer.get("catalog_shoe"):
        labels = " · ".join(v for v in (labeled.get("brand"), labeled.get("color"), labeled.get("hightop")) if v)
        own = (answer.get("method_shoe") or {}).get("shoe")
        st.info(f"This photo is in the catalog, labeled **{labeled['shoe']}**" + (f" ({labels})" if labels else "")
                + ": the answer is its label" + ("" if own in (None, labeled["shoe"]) else f" (the method alone "
                                                  f"would say {own})") + ". A change in words starts from it.",
                icon=":material/inventory_2:")
    for attr, v in answer["attributes"].items():
        st.progress(min(1.0, v["confidence"]), text=f"{ATTRIBUTE_NAMES.get(attr, attr)}: {v['value']} "
                                                     f"({v['confidence']:.0%})")
    st.dataframe([{"shoe": s["shoe"], "brand": s.get("brand", ""), "colour": s.get("color", ""),
                   "top": s.get("hightop", ""), "probability": f"{s['probability']:.1%}"} for s in answer["top_shoes"]],
                 hide_index=True)


def keep_filtered(results: list[dict], filters: dict) -> list[dict]:
    return [r for r in results if all(r.get(a) in values for a, values in filters.items())]


def show_grid(results: list[dict], key: str) -> None:
    with st.container(key=f"results-{key}"):
        if not results:
            st.info("no catalog shoe to show (see the notes above)")
        for start in range(0, len(results), GRID_COLUMNS):
            cols = st.columns(GRID_COLUMNS)
            for col, (i, r) in zip(cols, enumerate(results[start:start + GRID_COLUMNS], start)):
                with col:
                    try:
                        st.image(thumbnail(r["photo"]), width="stretch")
                    except ImageError as exc:
                        st.warning(str(exc))
                    st.markdown(f"**{r['shoe']}**  \n{r.get('brand', '')} · {r.get('color', '')} · "
                                f"{r.get('hightop', '')} · score {r['score']:.3f}")
                    if st.button("use as query", key=f"use-{key}-{i}"):
                        set_query("catalog", r["photo"], r["shoe"])
                        st.rerun()


def page() -> None:
    st.set_page_config(page_title="shoefind", layout="wide")
    st.title("shoefind")
    try:
        spec, dataset, data = settings()   # a bad environment value is a message too
        encoder, catalog = warm_model_and_catalog(spec, dataset, data)
    except (ModelUnavailable, EmptyCatalog, ValueError, OSError) as exc:
        st.error(str(exc))
        return
    if encoder.is_random:
        st.warning(f"model {encoder.model_id} has RANDOM weights: its answers mean nothing")
    options = sidebar(catalog)
    identify_section(encoder, catalog, options)
    search_section(encoder, catalog, options)


def identify_section(encoder, catalog, options: dict) -> None:
    """On top: the photo, what it is (and whether the catalog already has it), the change in words."""
    query = st.session_state.get("query")
    if query is None:
        st.info("Upload a photo or pick a catalog photo (left) to identify a shoe.")
        return
    change = st.session_state.get("change", "")        # the box sits below the identification
    answer = answer_photos(encoder, catalog, [query["value"]], change=change or None, method="auto",
                           change_method=options["method"], results=max(options["count"] * 3, 24),
                           text_weight=options["text_weight"])["answers"][0]
    if answer["error"]:
        st.error(f"{query['label']}: {answer['error'].split(': ', 1)[-1]}")
        return
    left, right = st.columns([1, 2])
    with left:
        photo = open_image(query["value"], size_hint=320)
        photo.thumbnail((320, 320))
        st.image(photo, caption=query["label"])
    with right:
        show_identification(answer)
    st.text_input("Change it in words", key="change", placeholder="same brand but red")
    if "change" in answer:
        c = answer["change"]
        st.markdown("**Understood:** " + "; ".join(c["understood"]) + f"  \n_never the photo's own shoe: {c['excluded']}_")
        for note in c["notes"]:
            st.warning(note)
        show_grid(keep_filtered(c["results"], options["filters"])[:options["count"]], "change")
    else:
        st.markdown("**Nearest catalog photos**")
        show_grid([p | {"photo": p["path"], "score": p["similarity"]} for p in answer["nearest_photos"]], "nearest")


def search_section(encoder, catalog, options: dict) -> None:
    """Below, in its own section: search the catalog by text."""
    st.divider()
    st.header("Search the catalog by text")
    if not getattr(encoder, "has_text", True):
        st.caption(f"{encoder.model_id} is an image-only model: text search needs a CLIP model.")
        return
    search_text = st.text_input("Search the catalog by text", key="search", placeholder="white high-top converse",
                                label_visibility="collapsed")
    if search_text.strip():
        found = search_catalog(encoder, catalog, search_text, k=options["count"])
        show_grid(keep_filtered(found["results"], options["filters"]), "search")


try:
    page()
except (ImageError, ValueError) as exc:      # a last guard: one message, never a traceback
    st.error(str(exc))
