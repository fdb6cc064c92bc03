//! PNG encoding of evidence pictures (8-bit RGB or grey).

/// Encodes `pixels` (row-major, 3 bytes per pixel when `rgb`, else 1) as PNG.
///
/// With the `png` crate's fast (fdeflate) compression, not its default
/// zlib level, which showed as the largest CPU item outside ONNX Runtime
/// in a `perf` profile of headshot analyses (the pictures come out a little
/// larger). What the pictures add to a request is measured, not assumed:
/// `benches/load/run-served.sh` times the headshot against a server with
/// `CANDOR_IMAGE_PICTURE=false`.
pub fn encode(pixels: &[u8], width: usize, height: usize, rgb: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(if rgb {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}
