"""The subset of ONNX's model format the agent reads, without the ``onnx`` package (see onnx_subset.proto)."""
