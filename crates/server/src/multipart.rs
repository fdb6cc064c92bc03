//! A streaming `multipart/form-data` reader (RFC 7578) with bounded
//! buffering: part data is handed out chunk by chunk as it arrives (only the
//! last few bytes that might start a boundary are held back), and the
//! preamble and each part's header block are capped in size. The caller
//! decides where each chunk goes and refuses at the first byte past a limit.

use axum::body::Bytes;
use memchr::memmem;

use crate::body::BodyReader;
use crate::error::ServerError;

/// Largest header block of one part (`Content-Disposition`, `Content-Type`).
pub(crate) const MAX_PART_HEADER_BYTES: usize = 16 * 1024;
/// Most header lines in one part.
const MAX_PART_HEADERS: usize = 16;
/// Largest preamble before the first boundary.
const MAX_PREAMBLE_BYTES: usize = 16 * 1024;

/// Headers of one part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartHead {
    /// Form field name.
    pub name: Option<String>,
    /// `filename` (or `filename*`) of a file part.
    pub file_name: Option<String>,
    /// Declared media type.
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary.
    Preamble,
    /// Inside a part's data.
    Data,
    /// At a boundary, between parts.
    Between,
    /// After the closing boundary.
    Done,
}

/// Reads parts from a body.
pub(crate) struct MultipartReader {
    body: BodyReader,
    /// `\r\n--<boundary>`.
    delim: Vec<u8>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    state: State,
    preamble: usize,
}

fn bad(message: impl Into<String>) -> ServerError {
    ServerError::bad_request("multipart", message)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Result<String, ServerError> {
    let params = content_type.split_once(';').map(|(_, p)| p).unwrap_or("");
    let b = parse_params(params)
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .map(|(_, v)| v)
        .ok_or_else(|| bad("multipart/form-data without a boundary parameter"))?;
    if b.is_empty() || b.len() > 70 {
        return Err(bad(
            "the multipart boundary must be 1 to 70 characters long",
        ));
    }
    Ok(b)
}

impl MultipartReader {
    pub(crate) fn new(body: BodyReader, boundary: &str) -> Self {
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        MultipartReader {
            body,
            delim,
            // A boundary may start the body without a leading CRLF.
            buf: b"\r\n".to_vec(),
            pos: 0,
            eof: false,
            state: State::Preamble,
            preamble: 0,
        }
    }

    /// The body reader back (to take its job ticket).
    pub(crate) fn into_body(self) -> BodyReader {
        self.body
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads one more chunk; false at the end of the body.
    async fn fill(&mut self) -> Result<bool, ServerError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        match self.body.next().await? {
            Some(c) => {
                self.buf.extend_from_slice(&c);
                Ok(true)
            }
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// Moves to the next part and returns its headers; `None` after the
    /// closing boundary. Unread data of the current part is skipped.
    pub(crate) async fn next_part(&mut self) -> Result<Option<PartHead>, ServerError> {
        if self.state == State::Data {
            while self.next_chunk().await?.is_some() {}
        }
        if self.state == State::Done {
            return Ok(None);
        }
        // Find the delimiter.
        loop {
            if let Some(i) = memmem::find(self.avail(), &self.delim) {
                if self.state == State::Preamble {
                    self.preamble += i;
                }
                self.pos += i + self.delim.len();
                break;
            }
            if self.state == State::Preamble {
                let keep = self.delim.len() - 1;
                let skip = self.avail().len().saturating_sub(keep);
                self.preamble += skip;
                self.pos += skip;
            }
            if self.preamble > MAX_PREAMBLE_BYTES {
                return Err(bad(format!(
                    "no multipart boundary in the first {MAX_PREAMBLE_BYTES} bytes of the body"
                )));
            }
            if !self.fill().await? {
                return Err(bad("the multipart body has no boundary"));
            }
        }
        // Closing delimiter, or the header block of a part.
        while self.avail().len() < 2 {
            if !self.fill().await? {
                return Err(bad("the multipart body ends after a boundary"));
            }
        }
        if self.avail().starts_with(b"--") {
            self.state = State::Done;
            return Ok(None);
        }
        let end = loop {
            if let Some(i) = memmem::find(self.avail(), b"\r\n\r\n") {
                break i;
            }
            if self.avail().len() > MAX_PART_HEADER_BYTES {
                return Err(bad(format!(
                    "a multipart part's headers are longer than {MAX_PART_HEADER_BYTES} bytes"
                )));
            }
            if !self.fill().await? {
                return Err(bad("the multipart body ends inside a part's headers"));
            }
        };
        if end > MAX_PART_HEADER_BYTES {
            return Err(bad(format!(
                "a multipart part's headers are longer than {MAX_PART_HEADER_BYTES} bytes"
            )));
        }
        let head = parse_part_head(&self.avail()[..end + 2])?;
        self.pos += end + 4;
        self.state = State::Data;
        Ok(Some(head))
    }

    /// The next chunk of the current part's data; `None` at its end.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>, ServerError> {
        if self.state != State::Data {
            return Ok(None);
        }
        loop {
            if let Some(i) = memmem::find(self.avail(), &self.delim) {
                if i == 0 {
                    self.state = State::Between;
                    return Ok(None);
                }
                let out = Bytes::copy_from_slice(&self.avail()[..i]);
                self.pos += i;
                return Ok(Some(out));
            }
            // The tail might be the start of the delimiter: hold it back.
            let keep = self.delim.len() - 1;
            let n = self.avail().len().saturating_sub(keep);
            if n > 0 {
                let out = Bytes::copy_from_slice(&self.avail()[..n]);
                self.pos += n;
                return Ok(Some(out));
            }
            if !self.fill().await? {
                return Err(bad(
                    "the multipart body ends inside a part (no closing boundary)",
                ));
            }
        }
    }
}

/// Parses a part's header block: the rest of the boundary line (transport
/// padding), then `Name: value` lines, each ending in CRLF.
fn parse_part_head(block: &[u8]) -> Result<PartHead, ServerError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| bad("a multipart part's headers are not valid UTF-8"))?;
    let mut lines = text.split("\r\n");
    let padding = lines.next().unwrap_or("");
    if !padding.chars().all(|c| c == ' ' || c == '\t') {
        return Err(bad("unexpected bytes after a multipart boundary"));
    }
    let mut head = PartHead::default();
    let mut count = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_PART_HEADERS {
            return Err(bad(format!(
                "a multipart part has more than {MAX_PART_HEADERS} headers"
            )));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a multipart part has a malformed header line"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = value.split_once(';').unwrap_or((value, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(bad(format!(
                    "multipart parts must be `form-data`, not `{}`",
                    kind.trim()
                )));
            }
            let mut plain = None;
            let mut extended = None;
            for (k, v) in parse_params(params) {
                match k.as_str() {
                    "name" => head.name = Some(v),
                    "filename" => plain = Some(v),
                    "filename*" => extended = ext_value(&v),
                    _ => {}
                }
            }
            head.file_name = extended.or(plain);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.to_owned());
        }
    }
    Ok(head)
}

/// `key=value` parameters after a `;`, values optionally quoted (with `\`
/// escapes). Keys are lower-cased.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_owned();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), value));
    }
}

/// An RFC 8187 extended value (`UTF-8''na%C3%AFve.pdf`), decoded.
fn ext_value(v: &str) -> Option<String> {
    let (charset, rest) = v.split_once('\'')?;
    let (_lang, encoded) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reader(chunks: Vec<&'static [u8]>, boundary: &str) -> MultipartReader {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from_static(c))),
        );
        let body = axum::body::Body::from_stream(stream);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        MultipartReader::new(
            BodyReader::new(body, u64::MAX, Duration::from_secs(5), deadline),
            boundary,
        )
    }

    async fn read_all(mut r: MultipartReader) -> Result<Vec<(PartHead, Vec<u8>)>, ServerError> {
        let mut out = Vec::new();
        while let Some(h) = r.next_part().await? {
            let mut data = Vec::new();
            while let Some(c) = r.next_chunk().await? {
                data.extend_from_slice(&c);
            }
            out.push((h, data));
        }
        Ok(out)
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--Xy not yet\r\n--XyZ\r\nContent-Disposition: form-data; name=text\r\n\r\nhello\r\n--XyZ--\r\nepilogue";

    #[tokio::test]
    async fn parts_are_read_whatever_the_chunking() {
        for size in [1usize, 2, 3, 7, 16, BODY.len()] {
            let chunks: Vec<&'static [u8]> = BODY.chunks(size).collect();
            let parts = read_all(reader(chunks, "XyZ")).await.unwrap();
            assert_eq!(parts.len(), 2, "chunk size {size}");
            assert_eq!(parts[0].0.name.as_deref(), Some("file"));
            assert_eq!(parts[0].0.file_name.as_deref(), Some("a \"b\".png"));
            assert_eq!(parts[0].0.content_type.as_deref(), Some("image/png"));
            assert_eq!(parts[0].1, b"\x89PNG\r\n--Xy not yet");
            assert_eq!(parts[1].0.name.as_deref(), Some("text"));
            assert_eq!(parts[1].0.file_name, None);
            assert_eq!(parts[1].1, b"hello");
        }
    }

    #[tokio::test]
    async fn boundary_at_start_and_extended_file_names() {
        let body: &'static [u8] = b"--b\r\nContent-Disposition: form-data; name=f; filename=\"x\"; filename*=UTF-8''na%C3%AFve.pdf\r\n\r\n%PDF\r\n--b--";
        let parts = read_all(reader(vec![body], "b")).await.unwrap();
        assert_eq!(parts[0].0.file_name.as_deref(), Some("naïve.pdf"));
        assert_eq!(parts[0].1, b"%PDF");
    }

    #[tokio::test]
    async fn malformed_bodies_are_bad_requests() {
        let huge_header: &'static [u8] = Box::leak(
            format!(
                "--b\r\nContent-Disposition: form-data; name=f; filename=\"{}\"\r\n\r\nx\r\n--b--",
                "n".repeat(MAX_PART_HEADER_BYTES + 10)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        for body in [
            &b"no boundary at all"[..],
            b"--b\r\nContent-Disposition: form-data; name=f\r\n\r\nunterminated",
            b"--b\r\nContent-Disposition: attachment\r\n\r\nx\r\n--b--",
            b"--b\r\nno colon here\r\n\r\nx\r\n--b--",
            huge_header,
        ] {
            let e = read_all(reader(vec![body], "b")).await.unwrap_err();
            assert!(
                matches!(
                    e,
                    ServerError::BadRequest {
                        code: "multipart",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn boundaries_from_content_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("multipart/form-data; charset=x; boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }
}
