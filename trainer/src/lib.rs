//! Training: full and LoRA fine-tuning (issue: trainer). Not implemented yet.
pub mod synth;
