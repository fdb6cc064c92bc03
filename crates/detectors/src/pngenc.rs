//! PNG encoding of evidence pictures (8-bit RGB or grey).

/// Encodes `pixels` (row-major, 3 bytes per pixel when `rgb`, else 1) as PNG.
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
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}
