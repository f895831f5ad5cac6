//! Flat XML as the WeChat family sends it: `<xml><Name>value</Name>…</xml>`,
//! values as text or CDATA, with or without the CDATA wrapper. Read with
//! quick-xml (linear time, no DTD entities expanded); building is ours, since
//! it only ever writes CDATA.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use super::ParseError;

/// Deepest nesting accepted; WeChat's messages go two levels down.
const MAX_DEPTH: usize = 8;

/// The root's child elements in document order, `(name, text)`; a nested
/// element is named by its path (`ScanCodeInfo/ScanType`). Nothing of the
/// body's text appears in an error.
pub fn fields(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid("XML body is not UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut fields = Vec::new();
    let mut value = String::new();
    let mut root_seen = false;
    loop {
        let event = reader.read_event().map_err(|_| {
            ParseError::Invalid(format!(
                "body is not well-formed XML (at byte {})",
                reader.error_position()
            ))
        })?;
        match event {
            Event::Start(start) => {
                if path.is_empty() && std::mem::replace(&mut root_seen, true) {
                    return Err(invalid("XML body has more than one root element"));
                }
                if path.len() >= MAX_DEPTH {
                    return Err(invalid("XML body is nested too deeply"));
                }
                path.push(name(start.local_name().as_ref())?);
                value.clear();
            }
            Event::Empty(empty) if !path.is_empty() => {
                let name = name(empty.local_name().as_ref())?;
                fields.push((joined(&path[1..], &name), String::new()));
            }
            Event::Text(text) => value.push_str(&text.xml_content().map_err(not_utf8)?),
            Event::CData(data) => value.push_str(&data.decode().map_err(not_utf8)?),
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    _ => {
                        let entity = reference.decode().map_err(not_utf8)?;
                        resolve_predefined_entity(&entity)
                            .ok_or_else(|| invalid("XML body uses an unknown entity"))?
                            .to_owned()
                    }
                };
                value.push_str(&resolved);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if path.is_empty() {
                    continue;
                }
                // An element with children has only whitespace of its own.
                let leaf = fields.last().is_none_or(|(field, _): &(String, String)| {
                    !field.starts_with(&format!("{}/", joined(&path[1..], &name)))
                });
                if leaf {
                    fields.push((joined(&path[1..], &name), std::mem::take(&mut value)));
                }
                value.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen || !path.is_empty() {
        return Err(invalid("body is not an XML document"));
    }
    Ok(fields)
}

/// The first field of that name.
pub fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `<xml>` with each field as CDATA (numbers as they are), as WeChat writes it.
pub fn build(fields: &[(&str, &str)]) -> String {
    let mut out = String::from("<xml>");
    for (name, value) in fields {
        let numeric = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        if numeric {
            out.push_str(&format!("<{name}>{value}</{name}>"));
        } else {
            // `]]>` cannot sit inside one CDATA section: split it across two.
            let value = value.replace("]]>", "]]]]><![CDATA[>");
            out.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>"));
        }
    }
    out.push_str("</xml>");
    out
}

fn joined(parents: &[String], name: &str) -> String {
    let mut parts: Vec<&str> = parents.iter().map(String::as_str).collect();
    parts.push(name);
    parts.join("/")
}

fn name(raw: &[u8]) -> Result<String, ParseError> {
    String::from_utf8(raw.to_vec()).map_err(|_| invalid("XML element name is not UTF-8"))
}

fn invalid(detail: &str) -> ParseError {
    ParseError::Invalid(detail.to_owned())
}

fn not_utf8<E>(_: E) -> ParseError {
    invalid("XML text is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_and_plain_text_read_alike() {
        let with = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1348831860</CreateTime>\n<Content><![CDATA[你好 a]]b]]></Content></xml>";
        let without = "<xml>\n<ToUserName>gh_1</ToUserName>\n<CreateTime>1348831860</CreateTime><Content>你好 a]]b</Content>\n</xml>";
        for body in [with, without] {
            let fields = fields(body.as_bytes()).unwrap();
            assert_eq!(get(&fields, "ToUserName"), Some("gh_1"));
            assert_eq!(get(&fields, "CreateTime"), Some("1348831860"));
            assert_eq!(get(&fields, "Content"), Some("你好 a]]b"));
            assert_eq!(fields.len(), 3, "{fields:?}");
        }
    }

    #[test]
    fn entities_nesting_and_empty_elements() {
        let body = "<?xml version=\"1.0\"?><xml><A>x &amp; y &#x4F60;</A><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo><E/></xml>";
        let fields = fields(body.as_bytes()).unwrap();
        assert_eq!(get(&fields, "A"), Some("x & y 你"));
        assert_eq!(get(&fields, "ScanCodeInfo/ScanType"), Some("qrcode"));
        assert_eq!(get(&fields, "ScanCodeInfo"), None);
        assert_eq!(get(&fields, "E"), Some(""));
    }

    #[test]
    fn broken_documents_are_errors_without_their_text() {
        for body in [
            "",
            "secret text",
            "<xml><A>secret</B></xml>",
            "<xml><A>&secret;</A></xml>",
            "<xml></xml><xml></xml>",
            "<xml><A>secret",
        ] {
            let error = fields(body.as_bytes()).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{body}: {error}");
        }
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert!(fields(deep.as_bytes()).is_err());
        assert!(fields(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn built_documents_read_back() {
        let built = build(&[
            ("ToUserName", "gh_1"),
            ("CreateTime", "17"),
            ("Content", "a]]>b"),
        ]);
        assert!(built.contains("<CreateTime>17</CreateTime>"), "{built}");
        let fields = fields(built.as_bytes()).unwrap();
        assert_eq!(get(&fields, "Content"), Some("a]]>b"));
    }
}
