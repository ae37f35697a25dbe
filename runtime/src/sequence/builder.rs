//! Builds the token sequence of one user turn from a template, the prompt and the images' grids,
//! recording where image-derived rows go.

use super::Tokenizer;
use crate::error::{Error, Result};
use crate::spec::{ImageLayout, Part};

/// Token ids of a turn plus the positions (relative to the turn start) that receive image rows,
/// in the order the front end produces them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub image_positions: Vec<usize>,
}

/// Appends one image's tokens for a `rows × cols` grid.
fn push_image(seq: &mut Sequence, layout: &ImageLayout, rows: usize, cols: usize) {
    if let Some(s) = layout.start {
        seq.ids.push(s);
    }
    for r in 0..rows {
        for _ in 0..cols {
            seq.image_positions.push(seq.ids.len());
            seq.ids.push(layout.patch);
        }
        if let Some(sep) = layout.row_sep {
            if r + 1 < rows || layout.row_sep_after_last {
                seq.ids.push(sep);
            }
        }
    }
    if let Some(e) = layout.end {
        seq.ids.push(e);
    }
}

/// Renders `parts` for `prompt` with images of the given `(rows, cols)` grids.
pub fn build_turn(
    tokenizer: &Tokenizer,
    layout: &ImageLayout,
    parts: &[Part],
    prompt: &str,
    grids: &[(usize, usize)],
) -> Result<Sequence> {
    let mut seq = Sequence::default();
    let mut placed = false;
    for part in parts {
        match part {
            Part::Images => {
                for &(rows, cols) in grids {
                    push_image(&mut seq, layout, rows, cols);
                }
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
        }
    }
    if !grids.is_empty() && !placed {
        return Err(Error::InvalidArgument(
            "this prompt format has no place for images".into(),
        ));
    }
    Ok(seq)
}
