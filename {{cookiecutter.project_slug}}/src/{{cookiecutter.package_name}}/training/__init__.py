"""Training: the training data in, a checked model artifact out, with its verified ONNX model."""
