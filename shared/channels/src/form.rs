//! HTML form bodies: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (RFC 7578), read from bytes already in memory.
//!
//! File parts are described (field, file name, media type, size) but their
//! bytes are not kept: Switchboard records that a customer sent a file, it does
//! not store it.

use crate::{ParseError, WebhookRequest};

/// Most parts a multipart body may have; more is refused as malformed.
const MAX_PARTS: usize = 1_000;

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
}

/// Reads the request body as a form according to its `Content-Type`.
pub fn read_form(request: &WebhookRequest) -> Result<Form, ParseError> {
    match request.content_type().as_str() {
        "application/x-www-form-urlencoded" => Ok(Form {
            fields: request.form_fields(),
            files: Vec::new(),
        }),
        "multipart/form-data" => {
            let header = request.header("content-type").unwrap_or_default();
            let boundary = header_param(header, "boundary")
                .ok_or_else(|| ParseError::Invalid("multipart body without a boundary".into()))?;
            parse_multipart(&request.body, &boundary)
        }
        "" => Err(ParseError::Invalid(
            "form body without a content type".into(),
        )),
        _ => Err(ParseError::Invalid("body is not a form".into())),
    }
}

/// Parses a `multipart/form-data` body delimited by `boundary`.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Form, ParseError> {
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(invalid("bad multipart boundary"));
    }
    let delimiter = format!("--{boundary}").into_bytes();
    let mut next_delimiter = format!("\r\n--{boundary}").into_bytes();

    // The first delimiter may open the body or follow a preamble.
    let first = find(body, &delimiter).ok_or_else(|| invalid("multipart boundary not found"))?;
    let mut pos = first + delimiter.len();
    let mut form = Form::default();
    let mut parts = 0usize;

    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(form);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let rest = &rest[padding..];
        let line_break = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") {
            1
        } else {
            return Err(invalid("malformed multipart delimiter"));
        };
        let start = pos + padding + line_break;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(invalid("too many multipart parts"));
        }

        // Part headers end at the first empty line; a part may have none.
        let part = &body[start..];
        let (headers, content_start) = if part.starts_with(b"\r\n") {
            (&part[..0], start + 2)
        } else if part.starts_with(b"\n") {
            (&part[..0], start + 1)
        } else if let Some(end) = find(part, b"\r\n\r\n") {
            (&part[..end], start + end + 4)
        } else if let Some(end) = find(part, b"\n\n") {
            (&part[..end], start + end + 2)
        } else {
            return Err(invalid("multipart part without a header end"));
        };

        // Accept a bare LF before the next delimiter from lenient producers.
        let tail = &body[content_start..];
        let (content_end, after) = match find(tail, &next_delimiter) {
            Some(at) => (
                content_start + at,
                content_start + at + next_delimiter.len(),
            ),
            None => {
                next_delimiter.remove(0);
                let found = find(tail, &next_delimiter);
                next_delimiter.insert(0, b'\r');
                match found {
                    Some(at) => (
                        content_start + at,
                        content_start + at + next_delimiter.len() - 1,
                    ),
                    None => return Err(invalid("multipart body is not terminated")),
                }
            }
        };
        add_part(&mut form, headers, &body[content_start..content_end]);
        pos = after;
    }
}

fn add_part(form: &mut Form, headers: &[u8], content: &[u8]) {
    let headers = String::from_utf8_lossy(headers);
    let mut disposition = None;
    let mut content_type = None;
    for line in headers.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.trim().to_owned());
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = value
                .split(';')
                .next()
                .map(|media| media.trim().to_ascii_lowercase())
                .filter(|media| !media.is_empty());
        }
    }
    let Some(disposition) = disposition else {
        return;
    };
    let Some(field) = header_param(&disposition, "name") else {
        return;
    };
    let filename = header_param(&disposition, "filename*")
        .and_then(|extended| decode_extended_value(&extended))
        .or_else(|| header_param(&disposition, "filename"));
    match filename {
        Some(filename) => form.files.push(FilePart {
            field,
            filename,
            content_type,
            size: content.len(),
        }),
        None => form
            .fields
            .push((field, String::from_utf8_lossy(content).into_owned())),
    }
}

/// A parameter of a structured header value (`form-data; name="a"; filename="b"`),
/// unquoted. Parameter names compare case-insensitively.
pub fn header_param(value: &str, wanted: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return None;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        rest = rest[eq + 1..].trim_start();
        let parsed;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((at, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(at);
                        break;
                    }
                    other => out.push(other),
                }
            }
            let end = end?;
            parsed = out;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            parsed = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        if name.eq_ignore_ascii_case(wanted) {
            return Some(parsed);
        }
    }
}

/// RFC 5987 `charset'language'percent-encoded` value (UTF-8 and ASCII only).
fn decode_extended_value(value: &str) -> Option<String> {
    let mut pieces = value.splitn(3, '\'');
    let charset = pieces.next()?;
    let _language = pieces.next()?;
    let encoded = pieces.next()?;
    if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("us-ascii")) {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let byte =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?, 16).ok()?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(detail: &str) -> ParseError {
    ParseError::Invalid(detail.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipart_request(body: &str, boundary: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            headers: vec![(
                "Content-Type".into(),
                format!("multipart/form-data; boundary=\"{boundary}\""),
            )],
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
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
        let body = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''%E5%8F%91%E7%A5%A8.png\r\n\r\nx\r\n--b--";
        let form = parse_multipart(body.as_bytes(), "b").unwrap();
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
            "--b\r\n\r\n%",
        ] {
            assert!(parse_multipart(body.as_bytes(), "b").is_err(), "{body:?}");
        }
        assert!(parse_multipart(b"--b--", "").is_err());
    }

    #[test]
    fn url_encoded_forms_and_other_types() {
        let request = WebhookRequest {
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: b"a=1&b=x+y%21".to_vec(),
            ..Default::default()
        };
        let form = read_form(&request).unwrap();
        assert_eq!(form.get("b"), Some("x y!"));
        let json = WebhookRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            ..Default::default()
        };
        assert!(read_form(&json).is_err());
        assert!(read_form(&WebhookRequest::default()).is_err());
    }

    #[test]
    fn header_params_handle_quotes_and_case() {
        let value = r#"form-data; NAME="a;b"; filename="c\"d""#;
        assert_eq!(header_param(value, "name").as_deref(), Some("a;b"));
        assert_eq!(header_param(value, "filename").as_deref(), Some("c\"d"));
        assert_eq!(
            header_param("multipart/form-data; boundary=abc", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(header_param("text/plain", "charset"), None);
        assert_eq!(header_param("x; a=\"unterminated", "a"), None);
    }
}
