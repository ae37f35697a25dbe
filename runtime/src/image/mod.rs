//! Images: decoding like Pillow's `open().convert("RGB")` with limits, Pillow-exact resampling, and
//! the family-driven preprocessing (resize policy → pad → rescale/normalize → patches).

pub mod pilimage;
mod preprocess;

pub use pilimage::{DecodeLimits, RgbImage};
pub use preprocess::{plan, preprocess, ImagePlan, PatchGrid};
