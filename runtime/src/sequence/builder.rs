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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokenizer() -> Tokenizer {
        let root = std::env::var("MONOVLM_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
            });
        Tokenizer::from_dir(&root.join("eve2-tiny/model")).unwrap()
    }

    fn layout(start: Option<u32>, row_sep: Option<u32>, end: Option<u32>) -> ImageLayout {
        ImageLayout {
            start,
            patch: 7,
            row_sep,
            row_sep_after_last: false,
            end,
        }
    }

    #[test]
    fn learned_markers_take_image_positions() {
        let tok = tokenizer();
        let eve = ImageSlots {
            tiles: 1,
            rows: 2,
            cols: 3,
            learned_cls: true,
            learned_row_end: true,
        };
        let l = layout(None, None, None);
        assert_eq!((eve.rows_out(), eve.positions(&l)), (9, 9));
        let s = build_turn(&tok, &l, &[Part::Token(1), Part::Images], "", &[eve]).unwrap();
        assert_eq!(s.ids, [1, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        assert_eq!(s.image_positions, (1..10).collect::<Vec<_>>());
        assert_eq!(s.image_spans.len(), 1);
        assert_eq!(s.image_spans[0], 1..10);
    }

    #[test]
    fn token_markers_and_tiles() {
        let tok = tokenizer();
        // SOLO-like: separators between rows only, start/end tokens.
        let l = layout(Some(1), Some(2), Some(3));
        let g = ImageSlots::grid(2, 2);
        assert_eq!(g.positions(&l), 4 + 1 + 2);
        let s = build_turn(&tok, &l, &[Part::Images], "", &[g]).unwrap();
        assert_eq!(s.ids, [1, 7, 7, 2, 7, 7, 3]);
        assert_eq!(s.image_positions, [1, 2, 4, 5]);
        // InternVL-like tiles: no separators, tiles back to back.
        let l = layout(Some(1), None, Some(3));
        let t = ImageSlots {
            tiles: 3,
            ..ImageSlots::grid(2, 2)
        };
        assert_eq!((t.rows_out(), t.positions(&l)), (12, 14));
        let s = build_turn(&tok, &l, &[Part::Images], "", &[t]).unwrap();
        assert_eq!(s.ids.len(), 14);
        assert_eq!(s.image_positions, (1..13).collect::<Vec<_>>());
    }

    #[test]
    fn images_go_at_the_prompt_marker_or_a_default_prefix() {
        let tok = tokenizer();
        let l = layout(None, None, None);
        let part = Part::TextWithImages {
            text: "USER: {prompt} ASSISTANT:".into(),
            marker: "<image>".into(),
            prefix: "<image>\n".into(),
        };
        let img = [ImageSlots::grid(1, 1)];
        let enc = |t: &str| tok.encode(t, false).unwrap();
        // No marker in the prompt: prefixed, and each chunk is tokenized on its own.
        let s = build_turn(&tok, &l, std::slice::from_ref(&part), "Hi?", &img).unwrap();
        let mut want = enc("USER: ");
        want.push(7);
        want.extend(enc("\nHi? ASSISTANT:"));
        assert_eq!(s.ids, want);
        // The user's own marker places the image.
        let s = build_turn(
            &tok,
            &l,
            std::slice::from_ref(&part),
            "Hi <image> there",
            &img,
        )
        .unwrap();
        let mut want = enc("USER: Hi ");
        want.push(7);
        want.extend(enc(" there ASSISTANT:"));
        assert_eq!(s.ids, want);
        // More markers than images is an error; without images the text is plain.
        assert!(build_turn(
            &tok,
            &l,
            std::slice::from_ref(&part),
            "<image><image>",
            &img
        )
        .is_err());
        let s = build_turn(&tok, &l, std::slice::from_ref(&part), "Hi?", &[]).unwrap();
        assert_eq!(s.ids, enc("USER: Hi? ASSISTANT:"));
        assert!(s.image_positions.is_empty());
        // A template without a place for images refuses them.
        assert!(build_turn(&tok, &l, &[Part::Text("{prompt}".into())], "x", &img).is_err());
    }
}
