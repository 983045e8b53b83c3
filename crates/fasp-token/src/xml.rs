//! The XML of COS answers (`faspConnectionInfo`, S3 error bodies), read with `quick-xml`.
//!
//! A document is flattened into its leaves: each element holding non-blank text, with the
//! local names (namespace prefixes dropped) from the root down to it. Attributes, comments,
//! processing instructions and the doctype are skipped; CDATA is text; the five predefined
//! entities and character references are decoded, any other entity is an error. Mismatched or
//! unclosed tags are errors. Error messages name elements, never their text (which may be a
//! secret), and the collected text is wiped when a leaf is dropped.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use zeroize::Zeroize;

/// One element with text: the names from the root down to it, and its decoded text (trimmed).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) path: Vec<String>,
    pub(crate) text: String,
}

impl Drop for Leaf {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

/// An open element: its local name and the text collected so far.
struct Open {
    name: String,
    text: String,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// Every element that holds non-blank text, in document order.
pub(crate) fn leaves(doc: &str) -> Result<Vec<Leaf>, String> {
    let mut reader = Reader::from_str(doc);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut out = Vec::new();
    let mut seen_root = false;
    loop {
        // quick-xml's messages name tags and positions, not text; still, only the kind of the
        // failure is kept, with the element it happened in.
        let event = reader.read_event().map_err(|e| {
            let place = stack
                .last()
                .map(|open| format!(" in <{}>", open.name))
                .unwrap_or_default();
            format!("not well-formed XML{place}: {}", describe(&e))
        })?;
        match event {
            Event::Start(start) => {
                let name = local(start.local_name().as_ref());
                if stack.is_empty() {
                    if seen_root {
                        return Err(format!("a second root element <{name}>"));
                    }
                    seen_root = true;
                }
                stack.push(Open {
                    name,
                    text: String::new(),
                });
            }
            Event::Empty(start) if stack.is_empty() => {
                if seen_root {
                    let name = local(start.local_name().as_ref());
                    return Err(format!("a second root element <{name}>"));
                }
                seen_root = true;
            }
            Event::Empty(_) => {}
            Event::End(_) => {
                // check_end_names guarantees the match.
                let Some(mut open) = stack.pop() else {
                    return Err("a closing tag without an opening tag".into());
                };
                let text = open.text.trim();
                if !text.is_empty() {
                    let mut path: Vec<String> = stack.iter().map(|o| o.name.clone()).collect();
                    path.push(std::mem::take(&mut open.name));
                    out.push(Leaf {
                        path,
                        text: text.to_owned(),
                    });
                }
            }
            Event::Text(text) => {
                let decoded = text
                    .decode()
                    .map_err(|_| "text that is not UTF-8".to_owned())?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&decoded),
                    None if decoded.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(data) => {
                let decoded = data
                    .decode()
                    .map_err(|_| "CDATA that is not UTF-8".to_owned())?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(&decoded),
                    None => return Err("CDATA outside the root element".into()),
                }
            }
            Event::GeneralRef(reference) => {
                let Some(open) = stack.last_mut() else {
                    return Err("an entity reference outside the root element".into());
                };
                let unknown = || format!("in <{}>: an unknown entity reference", open.name);
                if let Some(c) = reference.resolve_char_ref().map_err(|_| unknown())? {
                    open.text.push(c);
                } else {
                    let name = reference.decode().map_err(|_| unknown())?;
                    let value = resolve_predefined_entity(&name).ok_or_else(unknown)?;
                    open.text.push_str(value);
                }
            }
            Event::Eof => break,
            // Declaration, comments, processing instructions, doctype.
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("element <{}> is not closed", open.name));
    }
    if !seen_root {
        return Err("no element".into());
    }
    Ok(out)
}

/// The kind of a quick-xml error, without any of the document's text.
fn describe(e: &quick_xml::Error) -> String {
    use quick_xml::errors::{Error, IllFormedError, SyntaxError};
    match e {
        Error::Syntax(SyntaxError::UnclosedTag) => "unterminated tag".into(),
        Error::Syntax(SyntaxError::UnclosedComment) => "unterminated comment".into(),
        Error::Syntax(SyntaxError::UnclosedCData) => "unterminated CDATA section".into(),
        Error::Syntax(SyntaxError::UnclosedPI | SyntaxError::UnclosedXmlDecl) => {
            "unterminated processing instruction".into()
        }
        Error::Syntax(_) => "syntax error".into(),
        Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!("closing tag </{found}> does not match <{expected}>")
        }
        Error::IllFormed(IllFormedError::UnmatchedEndTag(name)) => {
            format!("closing tag </{name}> without an opening tag")
        }
        Error::IllFormed(IllFormedError::UnclosedReference) => "a bad entity reference".into(),
        Error::IllFormed(_) => "ill-formed document".into(),
        Error::Encoding(_) => "not UTF-8".into(),
        Error::Escape(_) => "a bad entity reference".into(),
        _ => "unreadable document".into(),
    }
}

/// The text of the first element named `name` (at any depth), if the document parses.
pub(crate) fn first_text(doc: &str, name: &str) -> Option<String> {
    leaves(doc)
        .ok()?
        .iter()
        .find(|leaf| leaf.path.last().is_some_and(|n| n == name))
        .map(|leaf| leaf.text.clone())
}

/// The text of the first element whose path ends with `suffix`.
pub(crate) fn find<'a>(leaves: &'a [Leaf], suffix: &[&str]) -> Option<&'a str> {
    leaves
        .iter()
        .find(|leaf| {
            leaf.path.len() >= suffix.len()
                && leaf.path[leaf.path.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(a, b)| a == b)
        })
        .map(|leaf| leaf.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_info_shape() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!-- answer -->
<FASPConnectionInfo xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <AccessKey>
    <Id>key-id</Id>
    <Secret>s&amp;cr&#x65;t&lt;&#33;</Secret>
  </AccessKey>
  <ATSEndpoint><![CDATA[https://ats.example.com:443]]></ATSEndpoint>
  <Empty/>
</FASPConnectionInfo>"#;
        let leaves = leaves(doc).unwrap();
        assert_eq!(find(&leaves, &["AccessKey", "Id"]), Some("key-id"));
        assert_eq!(find(&leaves, &["AccessKey", "Secret"]), Some("s&cret<!"));
        assert_eq!(
            find(&leaves, &["FASPConnectionInfo", "ATSEndpoint"]),
            Some("https://ats.example.com:443")
        );
        assert_eq!(find(&leaves, &["Id"]), Some("key-id"));
        assert_eq!(find(&leaves, &["Missing"]), None);
    }

    #[test]
    fn prefixes_and_attributes() {
        let doc = r#"<s3:Root a="x>y" b='1'><s3:Id kind="k">v</s3:Id></s3:Root>"#;
        assert_eq!(first_text(doc, "Id").as_deref(), Some("v"));
    }

    #[test]
    fn malformed_documents() {
        for (doc, expected) in [
            ("<a><b>x</a>", "closing tag </a> does not match <b>"),
            ("<a><b>x</b>", "element <a> is not closed"),
            ("</a>", "closing tag </a> without an opening tag"),
            ("<a>&bogus;</a>", "in <a>: an unknown entity reference"),
            ("<a>x & y</a>", "bad entity"),
            ("just text", "text outside the root element"),
            ("", "no element"),
            ("<a/><b/>", "a second root element <b>"),
            ("<a", "unterminated tag"),
        ] {
            let err = leaves(doc).unwrap_err();
            assert!(err.contains(expected), "{doc}: {err}");
        }
    }

    #[test]
    fn errors_never_show_text() {
        for doc in [
            "<Secret>hunter2 & more</Secret>",
            "<Secret>hunter2 &more;</Secret>",
            "<Secret>hunter2</Other>",
            "<Secret>hunter2",
            "<Secret>hunter2<",
        ] {
            let err = leaves(doc).unwrap_err();
            assert!(!err.contains("hunter2"), "{doc}: {err}");
        }
    }
}
