//! Gzip sizes, as `cargo xtask build` measures them (level 9).

use std::io::Write;

/// The gzip size of `bytes` at the highest level.
pub fn len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = encoder.write_all(bytes);
    encoder.finish().map(|v| v.len()).unwrap_or(0)
}
