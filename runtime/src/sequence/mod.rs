//! Text side: tokenizers, templates, and the token layout that places image rows in the sequence.

mod builder;
pub mod sentencepiece;
mod tokenizer;

pub use builder::{build_turn, ImageSlots, Sequence};
pub use tokenizer::Tokenizer;
