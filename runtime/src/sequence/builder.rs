//! Builds the token sequence of one user turn from a template, the prompt and the images' slot
//! plans, recording where image-derived rows go.

use super::Tokenizer;
use crate::error::{Error, Result};
use crate::spec::{ImageLayout, Part};
use std::ops::Range;

/// Token ids of a turn plus the positions (relative to the turn start) that receive image rows,
/// in the order the front end produces them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub image_positions: Vec<usize>,
    /// Span of each image (its marker tokens included), in order.
    pub image_spans: Vec<Range<usize>>,
}

/// How one image occupies the sequence: `tiles` grids of `rows × cols` front-end rows, optionally
/// preceded by a learned vector and with a learned vector after every row (EVE's CLS and split
/// vectors). Token markers (start, row separator, end) come from the [`ImageLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSlots {
    pub tiles: usize,
    pub rows: usize,
    pub cols: usize,
    pub learned_cls: bool,
    pub learned_row_end: bool,
}

impl ImageSlots {
    /// A plain `rows × cols` grid (one tile, no learned markers).
    pub fn grid(rows: usize, cols: usize) -> Self {
        ImageSlots {
            tiles: 1,
            rows,
            cols,
            learned_cls: false,
            learned_row_end: false,
        }
    }

    /// Image rows the front end produces for this image.
    pub fn rows_out(&self) -> usize {
        self.learned_cls as usize
            + self.tiles * self.rows * (self.cols + self.learned_row_end as usize)
    }

    /// Sequence positions the image takes under `layout` (image rows plus marker tokens).
    pub fn positions(&self, layout: &ImageLayout) -> usize {
        let seps = match layout.row_sep {
            Some(_) if !self.learned_row_end => {
                let per_tile = if layout.row_sep_after_last {
                    self.rows
                } else {
                    self.rows.saturating_sub(1)
                };
                self.tiles * per_tile
            }
            _ => 0,
        };
        self.rows_out() + seps + layout.start.is_some() as usize + layout.end.is_some() as usize
    }
}

/// Appends one image's tokens.
fn push_image(seq: &mut Sequence, layout: &ImageLayout, img: &ImageSlots) {
    let begin = seq.ids.len();
    let slot = |seq: &mut Sequence| {
        seq.image_positions.push(seq.ids.len());
        seq.ids.push(layout.patch);
    };
    if let Some(s) = layout.start {
        seq.ids.push(s);
    }
    if img.learned_cls {
        slot(seq);
    }
    for _ in 0..img.tiles {
        for r in 0..img.rows {
            for _ in 0..img.cols {
                slot(seq);
            }
            if img.learned_row_end {
                slot(seq);
            } else if let Some(sep) = layout.row_sep {
                if r + 1 < img.rows || layout.row_sep_after_last {
                    seq.ids.push(sep);
                }
            }
        }
    }
    if let Some(e) = layout.end {
        seq.ids.push(e);
    }
    seq.image_spans.push(begin..seq.ids.len());
}

/// Renders `parts` for `prompt` with the given images.
pub fn build_turn(
    tokenizer: &Tokenizer,
    layout: &ImageLayout,
    parts: &[Part],
    prompt: &str,
    images: &[ImageSlots],
) -> Result<Sequence> {
    let mut seq = Sequence::default();
    let mut next_image = 0;
    let mut placed = false;
    for part in parts {
        match part {
            Part::Images => {
                for img in &images[next_image..] {
                    push_image(&mut seq, layout, img);
                }
                next_image = images.len();
                placed = true;
            }
            Part::Token(id) => seq.ids.push(*id),
            Part::Text(t) => {
                let text = t.replace("{prompt}", prompt);
                seq.ids.extend(tokenizer.encode(&text, false)?);
            }
            Part::TextWithSpecials(t) => {
                let text = t.replace("{prompt}", prompt);
                seq.ids.extend(tokenizer.encode(&text, true)?);
            }
            Part::TextWithImages {
                text,
                marker,
                prefix,
            } => {
                let remaining = &images[next_image..];
                let prompt = if !remaining.is_empty()
                    && !marker.is_empty()
                    && !prompt.contains(marker.as_str())
                {
                    format!("{}{prompt}", prefix.repeat(remaining.len()))
                } else {
                    prompt.to_string()
                };
                let text = text.replace("{prompt}", &prompt);
                if remaining.is_empty() || marker.is_empty() {
                    seq.ids.extend(tokenizer.encode(&text, false)?);
                    continue;
                }
                let chunks: Vec<&str> = text.split(marker.as_str()).collect();
                if chunks.len() - 1 != remaining.len() {
                    return Err(Error::InvalidArgument(format!(
                        "the prompt has {} `{marker}` markers for {} images",
                        chunks.len() - 1,
                        remaining.len()
                    )));
                }
                for (k, chunk) in chunks.iter().enumerate() {
                    if k > 0 {
                        push_image(&mut seq, layout, &images[next_image]);
                        next_image += 1;
                    }
                    // Empty chunks encode to nothing (no dummy prefix), as upstream's split does.
                    if !chunk.is_empty() {
                        seq.ids.extend(tokenizer.encode(chunk, false)?);
                    }
                }
                placed = true;
            }
        }
    }
    if !images.is_empty() && !placed {
        return Err(Error::InvalidArgument(
            "this prompt format has no place for images".into(),
        ));
    }
    Ok(seq)
}
