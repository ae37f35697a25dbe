//! Font faces for `synth`: the two built-in faces (Ubuntu-Light, Hack) plus every usable
//! `.ttf`/`.otf` of a system folder (DejaVu by default), with per-glyph fallback.

use super::SynthError;
use ab_glyph::{Font, FontArc, FontRef, GlyphId};
use std::path::Path;

/// Default folder of system fonts (Debian's fonts-dejavu-core / fonts-dejavu-extra).
pub const DEFAULT_FONTS_DIR: &str = "/usr/share/fonts/truetype/dejavu";

/// One font face and its name as recorded in the dataset (file stem for system fonts).
pub struct Face {
    pub name: String,
    pub font: FontArc,
    /// Height of the digit `0` in pixels per pixel of `PxScale`.
    pub(crate) digit_ratio: f32,
}

/// The faces samples are drawn with. Order is deterministic: built-ins first, then system
/// faces sorted by file name, so a seed gives the same output for the same fonts.
pub struct FontSet {
    faces: Vec<Face>,
    warning: Option<String>,
}

/// Faces too thin or with unusual metrics to be legible at 14 px.
const SKIPPED: [&str; 3] = ["ExtraLight", "Thin", "Math"];

fn face(name: &str, font: FontArc) -> Option<Face> {
    // Must have every ASCII printable glyph we draw and a measurable digit.
    let needed = ('0'..='9')
        .chain('a'..='z')
        .chain('A'..='Z')
        .chain("+-=?/(),:".chars());
    for c in needed {
        if font.glyph_id(c).0 == 0 {
            return None;
        }
    }
    let outline = font.outline(font.glyph_id('0'))?;
    // Outline bounds are in font units, y up (min.y may be the top).
    let h = (outline.bounds.max.y - outline.bounds.min.y).abs();
    let total = font.height_unscaled();
    if !(h > 0.0 && total > 0.0) {
        return None;
    }
    Some(Face {
        name: name.to_string(),
        font,
        digit_ratio: h / total,
    })
}

impl FontSet {
    /// Only the faces compiled into the binary (Ubuntu-Light and Hack-Regular).
    pub fn builtin() -> FontSet {
        let mut faces = Vec::new();
        for (name, bytes) in [
            ("Ubuntu-Light", epaint_default_fonts::UBUNTU_LIGHT),
            ("Hack-Regular", epaint_default_fonts::HACK_REGULAR),
        ] {
            if let Ok(f) = FontRef::try_from_slice(bytes) {
                if let Some(fc) = face(name, FontArc::new(f)) {
                    faces.push(fc);
                }
            }
        }
        FontSet {
            faces,
            warning: None,
        }
    }

    /// Built-in faces plus the usable fonts in `dir`. A missing or font-less folder is not
    /// an error: the set keeps the built-ins and [`FontSet::warning`] says so.
    pub fn load(dir: &Path) -> Result<FontSet, SynthError> {
        let mut set = FontSet::builtin();
        if set.faces.is_empty() {
            return Err(SynthError::Fonts(
                "the built-in fonts failed to load".into(),
            ));
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(_) => {
                set.warning = Some(format!(
                    "fonts folder {} not found; using only the built-in fonts (Ubuntu-Light, Hack-Regular)",
                    dir.display()
                ));
                return Ok(set);
            }
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let ext = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                ext == "ttf" || ext == "otf"
            })
            .collect();
        paths.sort();
        let mut added = 0;
        for p in paths {
            let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if SKIPPED.iter().any(|s| stem.contains(s)) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let Ok(font) = FontArc::try_from_vec(bytes) else {
                continue;
            };
            if let Some(fc) = face(stem, font) {
                set.faces.push(fc);
                added += 1;
            }
        }
        if added == 0 {
            set.warning = Some(format!(
                "no usable fonts in {}; using only the built-in fonts (Ubuntu-Light, Hack-Regular)",
                dir.display()
            ));
        }
        Ok(set)
    }

    /// Warning to show the user (fonts folder missing or empty), if any.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    pub fn names(&self) -> Vec<&str> {
        self.faces.iter().map(|f| f.name.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.faces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    pub(crate) fn face(&self, i: usize) -> &Face {
        &self.faces[i]
    }

    /// The face and glyph that draw `c` for primary face `face`: the face itself when it has
    /// the glyph, else the first face in the set that does.
    pub(crate) fn lookup(&self, face: usize, c: char) -> Option<(usize, GlyphId)> {
        let id = self.faces[face].font.glyph_id(c);
        if id.0 != 0 {
            return Some((face, id));
        }
        self.faces.iter().enumerate().find_map(|(i, f)| {
            let id = f.font.glyph_id(c);
            (id.0 != 0).then_some((i, id))
        })
    }
}
