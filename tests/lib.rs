//! End-to-end tests across crates live in `tests/*.rs`; this library holds their shared helpers.

use std::path::PathBuf;

/// The golden fixtures: `$MONOVLM_FIXTURES`, else `shared/fixtures` beside the repository.
pub fn fixtures_root() -> PathBuf {
    if let Ok(p) = std::env::var("MONOVLM_FIXTURES") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// One fixture folder; panics with a clear message when the fixtures are not checked out.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures_root().join(name);
    assert!(
        p.join("cases.json").exists(),
        "fixture {} not found: set MONOVLM_FIXTURES or check out shared/ beside the repository",
        p.display()
    );
    p
}

/// Copies a fixture's model folder into a fresh temporary directory (for corruption tests).
pub fn copy_model(name: &str) -> tempfile::TempDir {
    let src = fixture(name).join("model");
    let dst = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&src).expect("read fixture model") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), dst.path().join(entry.file_name())).expect("copy");
    }
    dst
}

/// A GGUF v3 header writer for hand-made (possibly malformed) files.
pub struct Gguf(pub Vec<u8>);

impl Gguf {
    pub fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        Gguf(b)
    }
    pub fn str(mut self, s: &str) -> Self {
        self.0.extend((s.len() as u64).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    /// One tensor entry: name, dims (GGUF order), type, offset.
    pub fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut g = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            g = g.u64(d);
        }
        g.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    pub fn data(mut self, n: usize) -> Vec<u8> {
        while !self.0.len().is_multiple_of(32) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0u8, n));
        self.0
    }
}

/// A PNG whose header claims `w × h` (any size: the data is one empty zlib stream), CRCs right.
pub fn png_with_size(w: u32, h: u32, color_type: u8) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (ty, d) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (b"IEND", &[]),
    ] {
        out.extend_from_slice(&(d.len() as u32).to_be_bytes());
        out.extend_from_slice(ty);
        out.extend_from_slice(d);
        let mut crc = 0xFFFF_FFFFu32;
        for &b in ty.iter().chain(d) {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        out.extend_from_slice(&(!crc).to_be_bytes());
    }
    out
}
