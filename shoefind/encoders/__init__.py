"""Image and text encoders behind one interface: OpenAI CLIP, image backbones, ONNX Runtime."""
