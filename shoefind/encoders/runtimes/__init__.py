"""How a loaded model runs: the runtime chooser, this machine's capabilities, fidelity checks, bf16/fp16, ONNX."""
