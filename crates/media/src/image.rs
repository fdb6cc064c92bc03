//! Image decoding (JPEG, PNG, WebP, GIF, BMP, TIFF) with header-first limit
//! checks, EXIF orientation, and forensic metadata (EXIF, XMP, PNG text,
//! JPEG quantisation tables, C2PA presence, ICC presence).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::bounded::{read_capped, Deadline};
use crate::error::MediaError;
use crate::sniff::find;
use candor_core::Limits;

/// Most EXIF fields kept.
const MAX_EXIF_FIELDS: usize = 256;
/// Longest EXIF display value kept, in characters.
const MAX_EXIF_VALUE_CHARS: usize = 512;
/// Most PNG text chunks kept.
const MAX_PNG_TEXT_CHUNKS: usize = 128;
/// Largest inflated PNG text chunk kept, in bytes.
const MAX_PNG_TEXT_BYTES: u64 = 1024 * 1024;
/// Largest XMP packet kept, in bytes.
const MAX_XMP_BYTES: usize = 4 * 1024 * 1024;

/// One EXIF field: tag name and display value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExifField {
    /// Tag name, e.g. `Software`, `Make`, `Model`, `DateTimeOriginal`.
    pub tag: String,
    /// Value as displayed, with units where they apply.
    pub value: String,
}

/// One PNG text chunk (`tEXt`, `zTXt` or `iTXt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngTextChunk {
    /// Chunk keyword, e.g. `parameters`, `Software`, `Comment`.
    pub keyword: String,
    /// Text (inflated when the chunk was compressed).
    pub text: String,
    /// Whether the chunk was stored compressed (`zTXt`, or `iTXt` with the flag set).
    pub compressed: bool,
}

/// One JPEG quantisation table from a DQT marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantTable {
    /// Table id (0–3).
    pub id: u8,
    /// 0 for 8-bit entries, 1 for 16-bit entries.
    pub precision: u8,
    /// The 64 entries, in zig-zag order as stored.
    pub values: [u16; 64],
}

/// Metadata found in an image file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMetadata {
    /// EXIF fields (tag name and display value).
    pub exif: Vec<ExifField>,
    /// Raw XMP packet, if present.
    pub xmp: Option<String>,
    /// PNG text chunks.
    pub png_text: Vec<PngTextChunk>,
    /// JPEG quantisation tables.
    pub jpeg_quant_tables: Vec<QuantTable>,
    /// A C2PA manifest store (JUMBF `c2pa` in JPEG APP11, PNG `caBX`, WebP `C2PA`) is present.
    pub has_c2pa: bool,
    /// The C2PA reader's findings, when a manifest store is present.
    pub c2pa: Option<Box<crate::c2pa_read::C2paInfo>>,
    /// An ICC colour profile is embedded.
    pub icc_profile: bool,
}

/// A decoded image.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// 8-bit RGB pixels with the EXIF orientation applied (alpha composited on white).
    pub image: RgbImage,
    /// `jpeg`, `png`, `webp`, `gif`, `bmp` or `tiff`.
    pub format: &'static str,
    /// Width as stored (before orientation).
    pub original_width: u32,
    /// Height as stored (before orientation).
    pub original_height: u32,
    /// EXIF orientation value (1–8), when present.
    pub orientation: Option<u16>,
    /// Metadata found in the file.
    pub metadata: ImageMetadata,
    /// Non-fatal observations (e.g. "animated GIF: first frame used").
    pub warnings: Vec<String>,
    /// The file ends before its image data does; the decoder filled in the
    /// missing part (a JPEG without its end-of-image marker).
    pub truncated: bool,
}

fn image_format(format: &str) -> Option<ImageFormat> {
    Some(match format {
        "jpeg" => ImageFormat::Jpeg,
        "png" => ImageFormat::Png,
        "webp" => ImageFormat::WebP,
        "gif" => ImageFormat::Gif,
        "bmp" => ImageFormat::Bmp,
        "tiff" => ImageFormat::Tiff,
        _ => return None,
    })
}

/// Checks width/height against `max_image_side` and `max_pixels`.
pub fn check_dimensions(w: u32, h: u32, limits: &Limits) -> Result<(), MediaError> {
    if w == 0 || h == 0 {
        return Err(MediaError::corrupt(format!(
            "the image declares an empty size ({w}×{h})"
        )));
    }
    if w > limits.max_image_side || h > limits.max_image_side {
        return Err(MediaError::too_large(
            "max_image_side",
            format!(
                "image is {w}×{h}; the longest side may be at most {} pixels",
                limits.max_image_side
            ),
        ));
    }
    let px = u64::from(w) * u64::from(h);
    if px > limits.max_pixels {
        return Err(MediaError::too_large(
            "max_pixels",
            format!(
                "image is {w}×{h} = {} Mpx, limit is {} Mpx",
                mpx(px),
                mpx(limits.max_pixels)
            ),
        ));
    }
    Ok(())
}

fn mpx(px: u64) -> String {
    let m = px as f64 / 1e6;
    if (m - m.round()).abs() < 0.05 {
        format!("{}", m.round() as u64)
    } else {
        format!("{m:.1}")
    }
}

fn map_image_error(e: ImageError, format: &str) -> MediaError {
    let upper = format.to_ascii_uppercase();
    match e {
        ImageError::Limits(l) => MediaError::too_large(
            "max_pixels",
            format!("the {upper} image needs more memory to decode than allowed ({l})"),
        ),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::unprocessable(
                "truncated",
                format!("the {upper} image is truncated: the file ends before the image data does"),
            )
        }
        ImageError::Unsupported(u) => MediaError::unprocessable(
            "unsupported_variant",
            format!("this {upper} variant is not supported: {u}"),
        ),
        other => {
            let msg = other.to_string();
            let lower = msg.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of")
                || lower.contains("truncat")
                || lower.contains("unexpected end")
                || lower.contains("no more bytes")
            {
                MediaError::unprocessable(
                    "truncated",
                    format!("the {upper} image is truncated or incomplete: {msg}"),
                )
            } else {
                MediaError::corrupt(format!("the {upper} image is corrupt: {msg}"))
            }
        }
    }
}

/// Decodes an image of a sniffed `format`.
pub fn decode_image(
    bytes: &[u8],
    format: &'static str,
    limits: &Limits,
    deadline: &Deadline,
) -> Result<DecodedImage, MediaError> {
    let Some(img_format) = image_format(format) else {
        return Err(MediaError::unsupported(format!(
            "`{format}` is not an image format Candor reads"
        )));
    };
    let mut warnings = Vec::new();
    let mut meta = ImageMetadata::default();
    let mut exif_raw: Option<Vec<u8>> = None;
    match format {
        "jpeg" => scan_jpeg(bytes, &mut meta, &mut exif_raw),
        "png" => scan_png(bytes, limits, &mut meta, &mut exif_raw, &mut warnings),
        "webp" => scan_webp(bytes, &mut meta, &mut exif_raw),
        _ => {}
    }
    if !meta.has_c2pa && format != "jpeg" && format != "png" && format != "webp" {
        meta.has_c2pa = find(bytes, b"jumb").is_some() && find(bytes, b"c2pa").is_some();
    }
    deadline.check()?;
    if meta.has_c2pa {
        meta.c2pa = Some(Box::new(crate::c2pa_read::read(
            bytes,
            &format!("image/{format}"),
        )));
        deadline.check()?;
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), img_format);
    let mut il = image::Limits::default();
    // Dimensions are checked by us (with a clear message) right after the
    // header is read; the allocation cap backs that up (16-bit RGBA worst case).
    il.max_image_width = None;
    il.max_image_height = None;
    il.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(1 << 20));
    reader.limits(il);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h, limits)?;

    let orientation = match decoder.orientation() {
        Ok(o) => {
            let v = o.to_exif();
            (v != 1 || exif_declares_orientation(&exif_raw)).then_some(u16::from(v))
        }
        Err(_) => None,
    };
    if let Ok(Some(icc)) = decoder.icc_profile() {
        meta.icc_profile |= !icc.is_empty();
    }
    if exif_raw.is_none() {
        if let Ok(Some(e)) = decoder.exif_metadata() {
            exif_raw = Some(e);
        }
    }
    if meta.xmp.is_none() {
        if let Ok(Some(x)) = decoder.xmp_metadata() {
            meta.xmp = Some(xmp_text(&x));
        }
    }
    if format == "gif" && gif_has_multiple_frames(bytes) {
        warnings.push("animated GIF: first frame used".to_string());
    }
    deadline.check()?;

    let mut dynimg = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, format))?;
    deadline.check()?;
    if let Some(o) = orientation.and_then(|v| u8::try_from(v).ok()) {
        if let Some(o) = image::metadata::Orientation::from_exif(o) {
            dynimg.apply_orientation(o);
        }
    }
    let image = to_rgb_on_white(dynimg);
    if let Some(raw) = exif_raw {
        meta.exif = exif_fields(&raw, &mut warnings);
    }
    let truncated = format == "jpeg" && jpeg_lacks_end(bytes);
    if truncated {
        warnings.push(
            "the JPEG ends before its image data does (no end-of-image marker): the file is \
             truncated, and the decoder filled in the missing part"
                .into(),
        );
    }
    Ok(DecodedImage {
        image,
        format,
        original_width: w,
        original_height: h,
        orientation,
        metadata: meta,
        warnings,
        truncated,
    })
}

fn exif_declares_orientation(raw: &Option<Vec<u8>>) -> bool {
    let Some(raw) = raw else { return false };
    let raw = raw.strip_prefix(b"Exif\0\0").unwrap_or(raw);
    exif::Reader::new()
        .read_raw(raw.to_vec())
        .ok()
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .map(|_| ())
        })
        .is_some()
}

fn to_rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src.0[3]);
        for c in 0..3 {
            let v = u32::from(src.0[c]) * a + 255 * (255 - a);
            dst.0[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

fn xmp_text(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_XMP_BYTES)];
    String::from_utf8_lossy(raw).into_owned()
}

fn exif_fields(raw: &[u8], warnings: &mut Vec<String>) -> Vec<ExifField> {
    let raw = raw.strip_prefix(b"Exif\0\0").unwrap_or(raw);
    let exif = match exif::Reader::new().read_raw(raw.to_vec()) {
        Ok(e) => e,
        Err(e) => {
            warnings.push(format!("EXIF block present but unreadable: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for field in exif.fields() {
        if out.len() >= MAX_EXIF_FIELDS {
            warnings.push(format!(
                "more than {MAX_EXIF_FIELDS} EXIF fields; the rest were ignored"
            ));
            break;
        }
        if field.tag == exif::Tag::MakerNote {
            continue;
        }
        if let exif::Value::Undefined(ref v, _) = field.value {
            if v.len() > 64 && field.tag != exif::Tag::UserComment {
                continue;
            }
        }
        let mut value = field.display_value().with_unit(&exif).to_string();
        if value.chars().count() > MAX_EXIF_VALUE_CHARS {
            value = value.chars().take(MAX_EXIF_VALUE_CHARS).collect::<String>() + "…";
        }
        let tag = if field.ifd_num == exif::In::THUMBNAIL {
            format!("Thumbnail{}", field.tag)
        } else {
            field.tag.to_string()
        };
        out.push(ExifField { tag, value });
    }
    out
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Walks JPEG marker segments up to the first scan.
fn scan_jpeg(b: &[u8], meta: &mut ImageMetadata, exif_raw: &mut Option<Vec<u8>>) {
    let mut pos = 2usize;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return;
        }
        let mut m = pos + 1;
        while m < b.len() && b[m] == 0xFF {
            m += 1;
        }
        let Some(&marker) = b.get(m) else { return };
        pos = m + 1;
        if marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
            continue;
        }
        if marker == 0xD9 || marker == 0xDA {
            return;
        }
        let Some(len) = be16(b, pos) else { return };
        let len = usize::from(len);
        if len < 2 || pos + len > b.len() {
            return;
        }
        let seg = &b[pos + 2..pos + len];
        pos += len;
        match marker {
            0xDB => parse_dqt(seg, meta),
            0xE1 => {
                if let Some(rest) = seg.strip_prefix(b"Exif\0\0") {
                    if exif_raw.is_none() {
                        *exif_raw = Some(rest.to_vec());
                    }
                } else if let Some(rest) = seg.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                    if meta.xmp.is_none() {
                        meta.xmp = Some(xmp_text(rest));
                    }
                }
            }
            0xE2 if seg.starts_with(b"ICC_PROFILE\0") => meta.icc_profile = true,
            0xEB if find(seg, b"c2pa").is_some() => meta.has_c2pa = true,
            _ => {}
        }
    }
}

/// True when a JPEG has a scan (SOS) but no end-of-image marker after it.
/// Inside entropy-coded data 0xFF is always followed by 0x00 or a restart
/// marker, so `FF D9` after the first scan can only be the EOI marker.
fn jpeg_lacks_end(b: &[u8]) -> bool {
    let mut pos = 2usize;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            return false;
        }
        let mut m = pos + 1;
        while m < b.len() && b[m] == 0xFF {
            m += 1;
        }
        let Some(&marker) = b.get(m) else {
            return false;
        };
        pos = m + 1;
        if marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
            continue;
        }
        if marker == 0xD9 {
            return false;
        }
        if marker == 0xDA {
            return find(&b[pos..], &[0xFF, 0xD9]).is_none();
        }
        let Some(len) = be16(b, pos) else {
            return false;
        };
        pos += usize::from(len);
    }
    false
}

fn parse_dqt(mut seg: &[u8], meta: &mut ImageMetadata) {
    while let Some((&pq_tq, rest)) = seg.split_first() {
        let precision = pq_tq >> 4;
        let id = pq_tq & 0x0F;
        let size = if precision == 0 { 64 } else { 128 };
        if precision > 1 || rest.len() < size || meta.jpeg_quant_tables.len() >= 16 {
            return;
        }
        let mut values = [0u16; 64];
        for (i, v) in values.iter_mut().enumerate() {
            *v = if precision == 0 {
                u16::from(rest[i])
            } else {
                u16::from_be_bytes([rest[2 * i], rest[2 * i + 1]])
            };
        }
        meta.jpeg_quant_tables.push(QuantTable {
            id,
            precision,
            values,
        });
        seg = &rest[size..];
    }
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

fn inflate_text(
    data: &[u8],
    budget: &mut u64,
    limits: &Limits,
    warnings: &mut Vec<String>,
    keyword: &str,
) -> Option<Vec<u8>> {
    let cap = MAX_PNG_TEXT_BYTES.min(*budget);
    match read_capped(
        flate2::read::ZlibDecoder::new(data),
        cap,
        "a PNG text chunk",
    ) {
        Ok(v) => {
            let ratio = v.len() as f64 / data.len().max(1) as f64;
            if v.len() > 64 * 1024 && ratio > limits.max_decompression_ratio {
                warnings.push(format!(
                    "PNG text chunk `{keyword}` has a suspicious compression ratio ({ratio:.0}:1); ignored"
                ));
                return None;
            }
            *budget -= v.len() as u64;
            Some(v)
        }
        Err(e) => {
            warnings.push(format!("PNG text chunk `{keyword}` ignored: {e}"));
            None
        }
    }
}

fn scan_png(
    b: &[u8],
    limits: &Limits,
    meta: &mut ImageMetadata,
    exif_raw: &mut Option<Vec<u8>>,
    warnings: &mut Vec<String>,
) {
    let mut pos = 8usize;
    let mut budget = limits.max_decompressed_bytes;
    while let (Some(len), Some(ty)) = (be32(b, pos), b.get(pos + 4..pos + 8)) {
        let len = len as usize;
        let start = pos + 8;
        let Some(data) = start.checked_add(len).and_then(|end| b.get(start..end)) else {
            return;
        };
        pos = start + len + 4;
        match ty {
            b"IEND" => return,
            b"iCCP" => meta.icc_profile = true,
            b"caBX" => meta.has_c2pa = true,
            b"eXIf" if exif_raw.is_none() => *exif_raw = Some(data.to_vec()),
            b"tEXt" | b"zTXt" | b"iTXt" => {
                if meta.png_text.len() >= MAX_PNG_TEXT_CHUNKS {
                    continue;
                }
                let Some(nul) = data.iter().position(|&c| c == 0) else {
                    continue;
                };
                let keyword = latin1(&data[..nul]);
                let rest = &data[nul + 1..];
                let chunk = match ty {
                    b"tEXt" => Some(PngTextChunk {
                        keyword,
                        text: latin1(rest),
                        compressed: false,
                    }),
                    b"zTXt" => rest.get(1..).and_then(|z| {
                        inflate_text(z, &mut budget, limits, warnings, &keyword).map(|t| {
                            PngTextChunk {
                                text: latin1(&t),
                                keyword: keyword.clone(),
                                compressed: true,
                            }
                        })
                    }),
                    _ => parse_itxt(rest, &keyword, &mut budget, limits, warnings),
                };
                if let Some(c) = chunk {
                    if c.keyword == "XML:com.adobe.xmp" && meta.xmp.is_none() {
                        meta.xmp = Some(c.text.clone());
                    }
                    meta.png_text.push(c);
                }
            }
            _ => {}
        }
    }
}

fn parse_itxt(
    rest: &[u8],
    keyword: &str,
    budget: &mut u64,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Option<PngTextChunk> {
    let flag = *rest.first()?;
    let after = rest.get(2..)?;
    let lang_end = after.iter().position(|&c| c == 0)?;
    let after = after.get(lang_end + 1..)?;
    let tk_end = after.iter().position(|&c| c == 0)?;
    let text = after.get(tk_end + 1..)?;
    let text = if flag == 1 {
        inflate_text(text, budget, limits, warnings, keyword)?
    } else {
        text.to_vec()
    };
    Some(PngTextChunk {
        keyword: keyword.to_string(),
        text: String::from_utf8_lossy(&text).into_owned(),
        compressed: flag == 1,
    })
}

fn scan_webp(b: &[u8], meta: &mut ImageMetadata, exif_raw: &mut Option<Vec<u8>>) {
    let mut pos = 12usize;
    while let Some(ty) = b.get(pos..pos + 4) {
        let Some(sz) = b.get(pos + 4..pos + 8) else {
            return;
        };
        let len = u32::from_le_bytes([sz[0], sz[1], sz[2], sz[3]]) as usize;
        let start = pos + 8;
        let Some(data) = start.checked_add(len).and_then(|e| b.get(start..e)) else {
            return;
        };
        match ty {
            b"EXIF" => *exif_raw = Some(data.to_vec()),
            b"XMP " => meta.xmp = Some(xmp_text(data)),
            b"ICCP" => meta.icc_profile = true,
            b"C2PA" => meta.has_c2pa = true,
            _ => {}
        }
        pos = start + len + (len & 1);
    }
}

/// True if a GIF holds more than one image (walks the block structure
/// without decoding pixels).
fn gif_has_multiple_frames(b: &[u8]) -> bool {
    fn table_len(flags: u8) -> usize {
        if flags & 0x80 != 0 {
            3 * (1usize << ((flags & 7) + 1))
        } else {
            0
        }
    }
    fn skip_sub_blocks(b: &[u8], mut pos: usize) -> Option<usize> {
        loop {
            let n = usize::from(*b.get(pos)?);
            pos += 1;
            if n == 0 {
                return Some(pos);
            }
            pos += n;
        }
    }
    let Some(&flags) = b.get(10) else {
        return false;
    };
    let mut pos = 13 + table_len(flags);
    let mut frames = 0;
    loop {
        match b.get(pos) {
            Some(0x2C) => {
                frames += 1;
                if frames > 1 {
                    return true;
                }
                let Some(&f) = b.get(pos + 9) else {
                    return false;
                };
                pos += 10 + table_len(f) + 1;
                match skip_sub_blocks(b, pos) {
                    Some(p) => pos = p,
                    None => return false,
                }
            }
            Some(0x21) => match skip_sub_blocks(b, pos + 2) {
                Some(p) => pos = p,
                None => return false,
            },
            _ => return false,
        }
    }
}
