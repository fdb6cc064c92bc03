//! Document text extraction: PDF (text layer), DOCX, plain text / Markdown,
//! and pasted text. All produce the same normalised text with paragraph
//! ranges in character offsets.

use std::io::{Cursor, Read};
use std::ops::Range;

use quick_xml::events::Event;

use crate::bounded::{read_capped, Deadline};
use crate::error::{human_bytes, MediaError};
use crate::sniff::find;
use candor_core::Limits;

/// Below this many decompressed bytes a compression ratio is not checked:
/// small members (e.g. short XML parts) legitimately compress very well and
/// cannot exhaust memory.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
/// Most members accepted in a DOCX archive.
const MAX_ZIP_ENTRIES: usize = 10_000;

/// Extracted document text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedDocument {
    /// Normalised text: LF line ends, paragraphs separated by a blank line.
    pub text: String,
    /// Paragraphs as ranges of CHARACTER (Unicode scalar value) offsets into `text`.
    pub paragraphs: Vec<Range<usize>>,
    /// `pdf`, `docx` or `text`.
    pub format: &'static str,
    /// Page count (PDF only).
    pub pages: Option<u32>,
    /// Non-fatal observations.
    pub warnings: Vec<String>,
}

fn too_many_chars(n: u64, limits: &Limits) -> MediaError {
    MediaError::too_large(
        "max_text_chars",
        format!(
            "the text has more than {} characters ({}{n} found), the limit is {}",
            limits.max_text_chars,
            if n > limits.max_text_chars {
                "at least "
            } else {
                ""
            },
            limits.max_text_chars
        ),
    )
}

/// Builds a document from already-decoded text: normalises line ends,
/// splits paragraphs on blank lines and checks `max_text_chars`.
fn build(
    raw: &str,
    format: &'static str,
    pages: Option<u32>,
    warnings: Vec<String>,
    limits: &Limits,
) -> Result<DecodedDocument, MediaError> {
    // Cheap pre-check: a string has at least len/4 characters.
    if (raw.len() as u64) / 4 > limits.max_text_chars {
        return Err(too_many_chars(raw.len() as u64 / 4, limits));
    }
    let normalised = raw
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\0', "");
    let mut text = String::with_capacity(normalised.len());
    let mut paragraphs = Vec::new();
    let mut chars = 0usize;
    for para in split_paragraphs(&normalised) {
        if !text.is_empty() {
            text.push_str("\n\n");
            chars += 2;
        }
        let n = para.chars().count();
        text.push_str(para);
        paragraphs.push(chars..chars + n);
        chars += n;
        if chars as u64 > limits.max_text_chars {
            return Err(too_many_chars(chars as u64, limits));
        }
    }
    if paragraphs.is_empty() {
        return Err(MediaError::unprocessable(
            "no_text",
            "the document contains no text",
        ));
    }
    Ok(DecodedDocument {
        text,
        paragraphs,
        format,
        pages,
        warnings,
    })
}

/// Splits on runs of blank (whitespace-only) lines; trims trailing whitespace
/// of each line's block and leading/trailing blank lines.
fn split_paragraphs(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0usize;
    let mut offset = 0usize;
    for line in s.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        if content.trim().is_empty() {
            if let Some(st) = start.take() {
                out.push(s[st..end].trim_end());
            }
        } else {
            if start.is_none() {
                start = Some(offset);
            }
            end = offset + content.len();
        }
        offset += line.len();
    }
    if let Some(st) = start {
        out.push(s[st..end].trim_end());
    }
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Decodes a TXT/MD upload: UTF-8 (BOM stripped) or UTF-16 LE/BE with BOM.
pub fn decode_text_bytes(bytes: &[u8], limits: &Limits) -> Result<DecodedDocument, MediaError> {
    let text: String = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        utf8(rest)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        utf16(rest, u16::from_le_bytes)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        utf16(rest, u16::from_be_bytes)?
    } else {
        utf8(bytes)?
    };
    build(&text, "text", None, Vec::new(), limits)
}

fn utf8(b: &[u8]) -> Result<String, MediaError> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(MediaError::unprocessable(
            "invalid_utf8",
            format!(
                "the text is not valid UTF-8 (invalid byte at offset {}); save it as UTF-8",
                e.valid_up_to()
            ),
        )),
    }
}

fn utf16(b: &[u8], conv: fn([u8; 2]) -> u16) -> Result<String, MediaError> {
    if !b.len().is_multiple_of(2) {
        return Err(MediaError::unprocessable(
            "invalid_utf16",
            "the UTF-16 text has an odd number of bytes (truncated?)",
        ));
    }
    let units = b.chunks_exact(2).map(|c| conv([c[0], c[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|e| {
            MediaError::unprocessable(
                "invalid_utf16",
                format!("the UTF-16 text is malformed: {e}"),
            )
        })
}

/// Pasted text (from JSON or a form field): same normalisation and limits as TXT.
pub fn document_from_text(text: &str, limits: &Limits) -> Result<DecodedDocument, MediaError> {
    if text.len() as u64 > limits.max_upload_bytes {
        return Err(MediaError::too_large(
            "max_upload_bytes",
            format!(
                "the text is {}, the limit is {}",
                human_bytes(text.len() as u64),
                human_bytes(limits.max_upload_bytes)
            ),
        ));
    }
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    build(text, "text", None, Vec::new(), limits)
}

// ---------------------------------------------------------------- DOCX ----

fn ratio_error(what: &str, ratio: f64, limits: &Limits) -> MediaError {
    MediaError::too_large(
        "decompression_ratio",
        format!(
            "{what} expands {ratio:.0}:1 when decompressed, more than the allowed {:.0}:1 (possible zip bomb)",
            limits.max_decompression_ratio
        ),
    )
}

/// Extracts the text of a DOCX (`word/document.xml`), zip-bomb safe.
pub fn decode_docx(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Deadline,
) -> Result<DecodedDocument, MediaError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        MediaError::corrupt(format!(
            "the file is not a valid DOCX (its zip structure is broken: {e})"
        ))
    })?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(MediaError::corrupt(format!(
            "the DOCX has {} parts, more than the {MAX_ZIP_ENTRIES} accepted",
            zip.len()
        )));
    }
    // Declared sizes of every member, before reading anything.
    let mut declared_total: u64 = 0;
    let mut doc_index = None;
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| MediaError::corrupt(format!("the DOCX has a damaged part: {e}")))?;
        let size = f.size();
        let csize = f.compressed_size().max(1);
        declared_total = declared_total.saturating_add(size);
        if size > limits.max_decompressed_bytes || declared_total > limits.max_decompressed_bytes {
            return Err(MediaError::too_large(
                "max_decompressed_bytes",
                format!(
                    "the DOCX declares {} of uncompressed content, the limit is {}",
                    human_bytes(declared_total.max(size)),
                    human_bytes(limits.max_decompressed_bytes)
                ),
            ));
        }
        let ratio = size as f64 / csize as f64;
        if size > RATIO_FLOOR_BYTES && ratio > limits.max_decompression_ratio {
            return Err(ratio_error(
                &format!("DOCX part `{}`", f.name().unwrap_or_default()),
                ratio,
                limits,
            ));
        }
        if f.name().is_ok_and(|n| n == "word/document.xml") {
            doc_index = Some(i);
        }
    }
    let Some(idx) = doc_index else {
        return Err(MediaError::corrupt(
            "the file is a zip archive but not a Word document (no word/document.xml)",
        ));
    };
    deadline.check()?;
    let file = zip.by_index(idx).map_err(|e| match e {
        zip::result::ZipError::UnsupportedArchive(msg)
            if msg.contains("ncrypt") || msg.contains("assword") =>
        {
            MediaError::unprocessable(
                "encrypted_docx",
                "the DOCX is password-protected; remove the password and upload it again",
            )
        }
        other => MediaError::corrupt(format!("the DOCX text part cannot be read: {other}")),
    })?;
    if file.encrypted() {
        return Err(MediaError::unprocessable(
            "encrypted_docx",
            "the DOCX is password-protected; remove the password and upload it again",
        ));
    }
    let csize = file.compressed_size().max(1);
    // Actual size, whatever the header claims: at most the total cap, and at
    // most ratio × compressed size once past the floor.
    let ratio_cap = (csize as f64 * limits.max_decompression_ratio) as u64;
    let cap = limits
        .max_decompressed_bytes
        .min(ratio_cap.max(RATIO_FLOOR_BYTES));
    let xml = read_capped(file, cap, "the DOCX text part").map_err(|e| {
        if e.code() == "max_decompressed_bytes" && cap < limits.max_decompressed_bytes {
            ratio_error(
                "the DOCX text part",
                (cap + 1) as f64 / csize as f64,
                limits,
            )
        } else {
            e
        }
    })?;
    deadline.check()?;
    let text = docx_xml_text(&xml, limits, deadline)?;
    build(&text, "docx", None, Vec::new(), limits)
}

/// Text of WordprocessingML: `<w:t>` runs, `<w:tab/>` as a tab, `<w:br/>`
/// and `<w:cr/>` as line breaks, `</w:p>` as a paragraph break.
fn docx_xml_text(xml: &[u8], limits: &Limits, deadline: &Deadline) -> Result<String, MediaError> {
    let xml = std::str::from_utf8(xml)
        .map_err(|_| MediaError::corrupt("the DOCX text part is not valid UTF-8 XML"))?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut in_text = 0usize;
    let mut events = 0u64;
    let max_bytes = limits.max_text_chars.saturating_mul(4).saturating_add(1024);
    loop {
        events += 1;
        if events.is_multiple_of(4096) {
            deadline.check()?;
        }
        let ev = reader.read_event().map_err(|e| {
            MediaError::corrupt(format!("the DOCX text part is malformed XML: {e}"))
        })?;
        match ev {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text += 1,
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = in_text.saturating_sub(1),
                "p" => out.push_str("\n\n"),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                "p" => out.push_str("\n\n"),
                _ => {}
            },
            Event::Text(t) if in_text > 0 => out.push_str(&t),
            Event::CData(t) if in_text > 0 => out.push_str(&t),
            Event::GeneralRef(r) if in_text > 0 => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else {
                    match &*r {
                        "amp" => out.push('&'),
                        "lt" => out.push('<'),
                        "gt" => out.push('>'),
                        "quot" => out.push('"'),
                        "apos" => out.push('\''),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        if out.len() as u64 > max_bytes {
            return Err(too_many_chars(out.chars().count() as u64, limits));
        }
    }
    Ok(out)
}

// ----------------------------------------------------------------- PDF ----

/// Inflates every Flate-looking stream with a running cap, so a PDF whose
/// streams decompress to more than `max_decompressed_bytes` in total (or at a
/// ratio beyond `max_decompression_ratio`) is refused before it is parsed.
fn pdf_precheck_streams(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Deadline,
) -> Result<(), MediaError> {
    let mut total: u64 = 0;
    let mut pos = 0usize;
    let mut n = 0u32;
    while let Some(off) = find(&bytes[pos..], b"stream") {
        let at = pos + off;
        pos = at + 6;
        if at >= 3 && &bytes[at - 3..at] == b"end" {
            continue;
        }
        let mut start = at + 6;
        if bytes.get(start) == Some(&b'\r') {
            start += 1;
        }
        if bytes.get(start) != Some(&b'\n') {
            continue;
        }
        start += 1;
        n += 1;
        if n.is_multiple_of(64) {
            deadline.check()?;
        }
        let remaining = limits.max_decompressed_bytes.saturating_sub(total);
        let mut dec = flate2::read::ZlibDecoder::new(&bytes[start..]).take(remaining + 1);
        let mut sink = [0u8; 16 * 1024];
        let mut got: u64 = 0;
        loop {
            match dec.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k as u64,
            }
        }
        total += got;
        if total > limits.max_decompressed_bytes {
            return Err(MediaError::too_large(
                "max_decompressed_bytes",
                format!(
                    "the PDF's streams decompress to more than {}, the limit",
                    human_bytes(limits.max_decompressed_bytes)
                ),
            ));
        }
    }
    let ratio = total as f64 / bytes.len().max(1) as f64;
    if total > RATIO_FLOOR_BYTES * 16 && ratio > limits.max_decompression_ratio {
        return Err(ratio_error("the PDF", ratio, limits));
    }
    Ok(())
}

fn encrypted_pdf() -> MediaError {
    MediaError::unprocessable(
        "encrypted_pdf",
        "the PDF is encrypted (password-protected); remove the protection and upload it again",
    )
}

/// Extracts the text layer of a PDF.
pub fn decode_pdf(
    bytes: &[u8],
    limits: &Limits,
    deadline: &Deadline,
) -> Result<DecodedDocument, MediaError> {
    pdf_precheck_streams(bytes, limits, deadline)?;
    deadline.check()?;
    let cap = usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    let opts = lopdf::LoadOptions {
        max_decompressed_size: Some(cap),
        ..Default::default()
    };
    let has_encrypt_key = find(bytes, b"/Encrypt").is_some();
    let doc = match lopdf::Document::load_mem_with_options(bytes, opts) {
        Ok(d) => d,
        Err(e) => {
            if has_encrypt_key || matches!(e, lopdf::Error::Decryption(_)) {
                return Err(encrypted_pdf());
            }
            let msg = e.to_string();
            return Err(if bytes.len() < 64 || !contains_eof_marker(bytes) {
                MediaError::unprocessable(
                    "truncated",
                    format!("the PDF is truncated or damaged and cannot be opened ({msg})"),
                )
            } else {
                MediaError::corrupt(format!("the PDF is damaged and cannot be opened ({msg})"))
            });
        }
    };
    if doc.is_encrypted() {
        return Err(encrypted_pdf());
    }
    let mut warnings = Vec::new();
    if doc.was_encrypted() {
        warnings
            .push("the PDF was encrypted with an empty user password; its text was read".into());
    }
    deadline.check()?;
    let pages = doc.get_pages();
    let n_pages = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    if n_pages == 0 {
        return Err(MediaError::corrupt("the PDF has no pages"));
    }
    if n_pages > limits.max_pages {
        return Err(MediaError::too_large(
            "max_pages",
            format!(
                "the PDF has {n_pages} pages, the limit is {}",
                limits.max_pages
            ),
        ));
    }
    let mut text = String::new();
    let mut failed = 0u32;
    for &page in pages.keys() {
        deadline.check()?;
        match doc.extract_text_with_limit(&[page], cap) {
            Ok(t) => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&t);
                if text.len() as u64 / 4 > limits.max_text_chars {
                    return Err(too_many_chars(text.len() as u64 / 4, limits));
                }
            }
            Err(lopdf::Error::Decompress(e)) => {
                return Err(MediaError::too_large(
                    "max_decompressed_bytes",
                    format!("page {page} of the PDF decompresses past the limit ({e})"),
                ))
            }
            Err(_) => failed += 1,
        }
    }
    if failed > 0 {
        warnings.push(format!(
            "text of {failed} of {n_pages} pages could not be read"
        ));
    }
    if text.trim().is_empty() {
        if failed == n_pages {
            return Err(MediaError::corrupt(
                "the PDF's pages could not be read (damaged content streams or unsupported fonts)",
            ));
        }
        return Err(MediaError::unprocessable(
            "image_only_pdf",
            format!(
                "the PDF has {n_pages} page{} but no text layer (scanned or image-only); \
                 upload a PDF with selectable text, a DOCX or plain text",
                if n_pages == 1 { "" } else { "s" }
            ),
        ));
    }
    build(&text, "pdf", Some(n_pages), warnings, limits)
}

fn contains_eof_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    find(tail, b"%%EOF").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(doc: &DecodedDocument, r: &Range<usize>) -> String {
        doc.text
            .chars()
            .skip(r.start)
            .take(r.end - r.start)
            .collect()
    }

    #[test]
    fn paragraphs_are_char_offsets() {
        let d = document_from_text(
            "Zoë Ünïcødé\r\nline two\r\n\r\n\r\n  Second — para  \n\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(d.text, "Zoë Ünïcødé\nline two\n\n  Second — para");
        assert_eq!(d.paragraphs.len(), 2);
        assert_eq!(chars(&d, &d.paragraphs[0]), "Zoë Ünïcødé\nline two");
        assert_eq!(chars(&d, &d.paragraphs[1]), "  Second — para");
    }

    #[test]
    fn utf16_and_bom() {
        let mut b = vec![0xFF, 0xFE];
        for u in "héllo\n\nwörld".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        let d = decode_text_bytes(&b, &Limits::default()).unwrap();
        assert_eq!(d.text, "héllo\n\nwörld");
        let mut b = vec![0xFE, 0xFF];
        for u in "abc".encode_utf16() {
            b.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(
            decode_text_bytes(&b, &Limits::default()).unwrap().text,
            "abc"
        );
        let d = decode_text_bytes(b"\xEF\xBB\xBFbom", &Limits::default()).unwrap();
        assert_eq!(d.text, "bom");
    }

    #[test]
    fn invalid_utf8_rejected() {
        let e = decode_text_bytes(b"abc\xFF\xFEdef", &Limits::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_utf8");
        let e = decode_text_bytes(&[0xFF, 0xFE, 0x00, 0xD8], &Limits::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_utf16");
    }

    #[test]
    fn text_limit() {
        let limits = Limits {
            max_text_chars: 10,
            ..Limits::default()
        };
        let e = document_from_text("0123456789ABC", &limits).unwrap_err();
        assert_eq!(e.code(), "max_text_chars");
        assert!(document_from_text("0123456789", &limits).is_ok());
        let e = document_from_text(" \n\n \t ", &limits).unwrap_err();
        assert_eq!(e.code(), "no_text");
    }

    #[test]
    fn docx_xml_extraction() {
        let xml = br#"<?xml version="1.0"?><w:document xmlns:w="x"><w:body>
<w:p><w:r><w:t>Hello</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">A &amp; B &#233;</w:t></w:r></w:p>
<w:p><w:r><w:t>Line</w:t><w:br/><w:t>two</w:t></w:r></w:p><w:p/>
<w:p><w:r><w:delText>gone</w:delText><w:instrText>PAGE</w:instrText></w:r></w:p></w:body></w:document>"#;
        let t = docx_xml_text(xml, &Limits::default(), &Deadline::never()).unwrap();
        let d = build(&t, "docx", None, vec![], &Limits::default()).unwrap();
        assert_eq!(d.text, "Hello\tA & B é\n\nLine\ntwo");
        assert_eq!(d.paragraphs.len(), 2);
    }
}
