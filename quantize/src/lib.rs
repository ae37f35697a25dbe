//! Quantization: HF checkpoint → GGUF (issue: quantize). Not implemented yet.
