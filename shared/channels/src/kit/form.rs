//! HTML form bodies: `application/x-www-form-urlencoded` and
//! `multipart/form-data`, read from bytes already in memory with bounds:
//! linear time (multer finds delimiters with `memchr`), at most
//! [`MAX_PARTS`] parts and [`MAX_HEADER_BYTES`] of headers per part.
//!
//! File parts are described (field, file name, media type, size) but their
//! bytes are not kept: Switchboard records that a customer sent a file, it
//! does not store it.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::request::{RequestExt, WebhookRequest};

/// Most parts a multipart body may have.
pub const MAX_PARTS: usize = 1_000;
/// Most bytes of headers one part may have.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Why a body is not a readable form. Never repeats body text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("form body without a content type")]
    NoContentType,
    #[error("body is not a form")]
    NotAForm,
    #[error("multipart body without a usable boundary")]
    Boundary,
    #[error("multipart body is malformed")]
    Malformed,
    #[error("multipart body has more than {MAX_PARTS} parts")]
    TooManyParts,
    #[error("a multipart part has more than {MAX_HEADER_BYTES} bytes of headers")]
    HeadersTooLarge,
}

/// A file uploaded in a multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// The form field name, e.g. `attachment-1`.
    pub field: String,
    pub filename: String,
    /// The part's media type, lower-cased, without parameters.
    pub content_type: Option<String>,
    pub size: usize,
}

/// A decoded form: text fields in order, and file parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<FilePart>,
    /// The bytes of the multipart text fields that are not UTF-8 (a raw
    /// mail in its own charset), which `fields` holds with replacements.
    pub raw: Vec<(String, Bytes)>,
}

impl Form {
    /// First field of that name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// First field of that name with a value that is not blank.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|value| !value.trim().is_empty())
    }

    /// The bytes of the first field of that name, as sent.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        match self.raw.iter().find(|(key, _)| key == name) {
            Some((_, bytes)) => Some(bytes),
            None => self.get(name).map(str::as_bytes),
        }
    }

    /// The first field of that name decoded in the charset `label` names
    /// (`gb2312`, `iso-2022-jp`, ...); as UTF-8, invalid sequences replaced,
    /// when there is no label or it is unknown.
    pub fn decoded(&self, name: &str, label: Option<&str>) -> Option<String> {
        let encoding = label
            .and_then(|label| encoding_rs::Encoding::for_label(label.trim().as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        let (text, _) = encoding.decode_without_bom_handling(self.bytes(name)?);
        Some(text.into_owned())
    }

    /// The uploaded files, described as attachments.
    pub fn attachments(&self) -> Vec<switchboard_domain::Attachment> {
        let attachment = |file: &FilePart| switchboard_domain::Attachment {
            kind: file.content_type.as_deref().map_or(
                switchboard_domain::AttachmentKind::File,
                super::kind_for_mime,
            ),
            provider_id: None,
            url: None,
            mime_type: file.content_type.clone(),
            name: Some(file.filename.clone()).filter(|name| !name.is_empty()),
        };
        self.files.iter().map(attachment).collect()
    }
}

/// The pairs of an `application/x-www-form-urlencoded` body, exactly as
/// `form_urlencoded::parse` reads them (`+` is a space, an invalid `%`
/// escape stays as it is, invalid UTF-8 is replaced), each name and value
/// decoded straight into its own buffer: Mailgun posts kilobytes of escapes.
pub fn urlencoded(body: &[u8]) -> Vec<(String, String)> {
    let ends = memchr::memchr_iter(b'&', body).chain([body.len()]);
    let mut start = 0;
    let mut pairs = Vec::new();
    for end in ends {
        let pair = &body[start..end];
        start = end + 1;
        if pair.is_empty() {
            continue;
        }
        pairs.push(match memchr::memchr(b'=', pair) {
            Some(at) => (decode(&pair[..at]), decode(&pair[at + 1..])),
            None => (decode(pair), String::new()),
        });
    }
    pairs
}

fn decode(bytes: &[u8]) -> String {
    let hex = |b: Option<&u8>| (*b? as char).to_digit(16).map(|digit| digit as u8);
    // A byte at a time: in Mailgun's forms most characters are escapes, and
    // looking for the next one cost more than the copying it saved.
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        let (decoded, used) = match byte {
            b'+' => (b' ', 1),
            b'%' => match (hex(bytes.get(at + 1)), hex(bytes.get(at + 2))) {
                (Some(high), Some(low)) => (high << 4 | low, 3),
                _ => (b'%', 1),
            },
            other => (other, 1),
        };
        out.push(decoded);
        at += used;
    }
    String::from_utf8(out)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// Reads the request body as a form according to its `Content-Type`.
pub fn read_form(request: &WebhookRequest) -> Result<Form, FormError> {
    match request.content_type().as_str() {
        "application/x-www-form-urlencoded" => Ok(Form {
            fields: request.form_fields(),
            ..Form::default()
        }),
        "multipart/form-data" => {
            let header = request.header("content-type").unwrap_or_default();
            let boundary = multer::parse_boundary(header).map_err(|_| FormError::Boundary)?;
            parse_multipart(request.body().clone(), &boundary)
        }
        "" => Err(FormError::NoContentType),
        _ => Err(FormError::NotAForm),
    }
}

/// Parses a `multipart/form-data` body delimited by `boundary`.
pub fn parse_multipart(body: Bytes, boundary: &str) -> Result<Form, FormError> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(FormError::Boundary);
    }
    let stream = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary.to_owned());
    // The whole body is in memory, so no step of the parse ever waits.
    let future = std::pin::pin!(async move {
        let mut form = Form::default();
        let mut parts = 0usize;
        while let Some(field) = multipart.next_field().await.map_err(multer_error)? {
            parts += 1;
            if parts > MAX_PARTS {
                return Err(FormError::TooManyParts);
            }
            let header_bytes: usize = field
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum();
            if header_bytes > MAX_HEADER_BYTES {
                return Err(FormError::HeadersTooLarge);
            }
            let name = field.name().unwrap_or_default().to_owned();
            let disposition = field
                .headers()
                .get(http::header::CONTENT_DISPOSITION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let filename =
                extended_filename(&disposition).or_else(|| field.file_name().map(str::to_owned));
            let content_type = field
                .content_type()
                .map(|mime| mime.essence_str().to_ascii_lowercase());
            let content = field.bytes().await.map_err(multer_error)?;
            if name.is_empty() {
                continue;
            }
            match filename {
                Some(filename) => form.files.push(FilePart {
                    field: name,
                    filename,
                    content_type,
                    size: content.len(),
                }),
                None => {
                    let text = match std::str::from_utf8(&content) {
                        Ok(text) => text.to_owned(),
                        Err(_) => {
                            form.raw.push((name.clone(), content.clone()));
                            String::from_utf8_lossy(&content).into_owned()
                        }
                    };
                    form.fields.push((name, text))
                }
            }
        }
        Ok(form)
    });
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(FormError::Malformed),
    }
}

fn multer_error(_: multer::Error) -> FormError {
    FormError::Malformed
}

/// RFC 5987 `filename*=charset'language'percent-encoded` (UTF-8 and ASCII only).
fn extended_filename(disposition: &str) -> Option<String> {
    let start = disposition.to_ascii_lowercase().find("filename*=")?;
    let value = disposition[start + "filename*=".len()..]
        .split(';')
        .next()?
        .trim()
        .trim_matches('"');
    let mut pieces = value.splitn(3, '\'');
    let charset = pieces.next()?;
    let _language = pieces.next()?;
    let encoded = pieces.next()?;
    if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("us-ascii")) {
        return None;
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()
        .map(|name| name.into_owned())
}

/// A form POST as a provider sends it (samples, tests).
pub fn form_request(path: &str, pairs: &[(&str, &str)]) -> super::WebhookRequest {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let content_type = "application/x-www-form-urlencoded".to_owned();
    let headers = [("content-type".to_owned(), content_type)];
    super::build_request("POST", path, &headers, body).expect("a valid request")
}

#[cfg(test)]
mod tests {
    #[test]
    fn urlencoded_reads_exactly_what_form_urlencoded_reads() {
        for body in [
            "a=1&b=x+y%20z&&c&=v&d=%zz%4&e=%E4%BD%A0%e5%a5%bd&f=%ff%fe+&g=%+4%4+&h==%3D&i=%",
            "",
            "&&&",
            "only",
            "k=%25%2B%2b+%C3",
        ] {
            let expected: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(urlencoded(body.as_bytes()), expected, "{body}");
        }
    }

    use super::*;
    use crate::kit::request::build_request;

    fn multipart_request(body: &str, boundary: &str) -> WebhookRequest {
        let content_type = format!("multipart/form-data; boundary=\"{boundary}\"");
        build_request(
            "POST",
            "/",
            &[("Content-Type".into(), content_type)],
            body.to_owned(),
        )
        .unwrap()
    }

    #[test]
    fn reads_fields_and_describes_files() {
        let body = "preamble\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"subject\"\r\n\r\n\
            Hello \"there\"\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"attachment-1\"; filename=\"r\u{e9}sum\u{e9}.pdf\"\r\n\
            Content-Type: Application/PDF; name=x\r\n\r\n\
            %PDF-1.4 binary\r\n\r\nstill the file\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"body-plain\"\r\n\r\n\
            line one\r\nline two\r\n\
            --XyZ--\r\nepilogue";
        let form = read_form(&multipart_request(body, "XyZ")).unwrap();
        assert_eq!(form.get("subject"), Some("Hello \"there\""));
        assert_eq!(form.get("body-plain"), Some("line one\r\nline two"));
        assert_eq!(form.files.len(), 1);
        let file = &form.files[0];
        assert_eq!(file.field, "attachment-1");
        assert_eq!(file.filename, "résumé.pdf");
        assert_eq!(file.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(file.size, "%PDF-1.4 binary\r\n\r\nstill the file".len());
    }

    #[test]
    fn extended_file_names_are_decoded() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''%E5%8F%91%E7%A5%A8.png\r\n\r\nx\r\n--b--\r\n";
        let form = parse_multipart(Bytes::from(body), "b").unwrap();
        assert_eq!(form.files[0].filename, "发票.png");
    }

    #[test]
    fn broken_multipart_is_an_error_not_a_panic() {
        for body in [
            "",
            "no boundary here",
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
            "--b\r\nContent-Disposition: form-data; name=\"a\"",
            "--bX",
        ] {
            assert!(parse_multipart(Bytes::from(body), "b").is_err(), "{body:?}");
        }
        assert!(parse_multipart(Bytes::from("--b--"), "").is_err());
    }

    #[test]
    fn part_count_and_header_size_are_bounded() {
        let many = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"
            .repeat(MAX_PARTS + 1)
            + "--b--\r\n";
        assert_eq!(
            parse_multipart(Bytes::from(many), "b"),
            Err(FormError::TooManyParts)
        );
        let fat = format!(
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: {}\r\n\r\nx\r\n--b--\r\n",
            "p".repeat(MAX_HEADER_BYTES)
        );
        assert_eq!(
            parse_multipart(Bytes::from(fat), "b"),
            Err(FormError::HeadersTooLarge)
        );
    }

    /// The shape that took 4.4 s in the old parser: a thousand small parts
    /// delimited by bare LFs, then one large part, 1 MiB in all.
    #[test]
    fn lf_only_multipart_is_refused_in_linear_time() {
        let mut body = String::new();
        for n in 0..999 {
            body.push_str(&format!(
                "--b\nContent-Disposition: form-data; name=\"f{n}\"\n\nx\n"
            ));
        }
        body.push_str("--b\nContent-Disposition: form-data; name=\"pad\"\n\n");
        body.push_str(&"y".repeat(1024 * 1024 - body.len() - 8));
        body.push_str("\n--b--\n");
        let started = std::time::Instant::now();
        let result = parse_multipart(Bytes::from(body), "b");
        assert!(result.is_err());
        // A correctness bound (debug build, loaded machine), not a benchmark.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn url_encoded_forms_and_other_types() {
        let request = build_request(
            "POST",
            "/",
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            "a=1&b=x+y%21",
        )
        .unwrap();
        assert_eq!(read_form(&request).unwrap().get("b"), Some("x y!"));
        let json = build_request(
            "POST",
            "/",
            &[("content-type".into(), "application/json".into())],
            "{}",
        )
        .unwrap();
        assert_eq!(read_form(&json), Err(FormError::NotAForm));
        let bare = build_request("POST", "/", &[], "").unwrap();
        assert_eq!(read_form(&bare), Err(FormError::NoContentType));
    }
}
