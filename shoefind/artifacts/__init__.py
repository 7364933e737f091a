"""Stored artifacts are verified before they are used: the checks every loader shares.

- torch_files: torch files are read as weights only, never code; a code-carrying, truncated or
  foreign file is refused with shoefind's own line (never torch's advice to turn weights_only off).
- manifests: a trained checkpoint is compared with the sha256 its manifest recorded.
- finite: a model holding NaN or infinities is refused when it is loaded for inference.

The ONNX exports have their own manifest (shoefind.encoders.runtimes.onnx_manifest), the learned
classifiers theirs (shoefind.learn.saved).
"""
