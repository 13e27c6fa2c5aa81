"""From a trained checkpoint to artifacts an agent can build an engine from.

``onnx_export`` writes the FP32 ONNX model (BN folded, dynamic batch,
preprocessing spec in the metadata) and checks it against torch;
``variants`` derives the FP16 and INT8 QDQ models and measures each one's
accuracy with ONNX Runtime.
"""
