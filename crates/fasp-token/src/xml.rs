//! Just enough XML for COS answers: `faspConnectionInfo` and S3 error bodies.
//!
//! The document is read as a tree of elements whose text is collected; namespace prefixes are
//! dropped from names, attributes are skipped, comments, processing instructions and the
//! doctype are ignored, CDATA is text, and the five named entities plus numeric character
//! references are decoded. Mismatched or unclosed tags are errors. Error messages name elements,
//! never their text (which may be a secret).

/// One element with text: the names from the root down to it, and its decoded text (trimmed).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) path: Vec<String>,
    pub(crate) text: String,
}

/// Every element that holds non-blank text, in document order.
pub(crate) fn leaves(doc: &str) -> Result<Vec<Leaf>, String> {
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    let mut rest = doc;
    let mut seen_root = false;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            add_text(&mut stack, rest)?;
            break;
        };
        add_text(&mut stack, &rest[..lt])?;
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA section")?;
            match stack.last_mut() {
                Some((_, text)) => text.push_str(&after[..end]),
                None => return Err("CDATA outside the root element".into()),
            }
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<?") {
            let end = after
                .find("?>")
                .ok_or("unterminated processing instruction")?;
            rest = &after[end + 2..];
        } else if rest.starts_with("<!") {
            let end = rest.find('>').ok_or("unterminated declaration")?;
            rest = &rest[end + 1..];
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated closing tag")?;
            let name = local_name(after[..end].trim());
            match stack.pop() {
                Some((open, text)) if open == name => {
                    let text = text.trim();
                    if !text.is_empty() {
                        let mut path: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
                        path.push(open);
                        out.push(Leaf {
                            path,
                            text: text.to_owned(),
                        });
                    }
                }
                Some((open, _)) => {
                    return Err(format!("closing tag </{name}> does not match <{open}>"));
                }
                None => return Err(format!("closing tag </{name}> without an opening tag")),
            }
            rest = &after[end + 1..];
        } else {
            let end = tag_end(rest).ok_or("unterminated tag")?;
            let inner = &rest[1..end];
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name = inner
                .split(|c: char| c.is_whitespace())
                .next()
                .unwrap_or_default();
            if name.is_empty() {
                return Err("a tag without a name".into());
            }
            if stack.is_empty() {
                if seen_root {
                    return Err(format!("a second root element <{}>", local_name(name)));
                }
                seen_root = true;
            }
            if !self_closing {
                stack.push((local_name(name), String::new()));
            }
            rest = &rest[end + 1..];
        }
    }
    if let Some((open, _)) = stack.last() {
        return Err(format!("element <{open}> is not closed"));
    }
    if !seen_root {
        return Err("no element".into());
    }
    Ok(out)
}

/// The text of the first element named `name` (at any depth), if the document parses.
pub(crate) fn first_text(doc: &str, name: &str) -> Option<String> {
    leaves(doc)
        .ok()?
        .into_iter()
        .find(|leaf| leaf.path.last().is_some_and(|n| n == name))
        .map(|leaf| leaf.text)
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

/// Index of the `>` closing the tag at the start of `text`, skipping quoted attribute values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn local_name(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

fn add_text(stack: &mut [(String, String)], raw: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some((name, text)) => {
            decode_into(raw, text).map_err(|e| format!("in <{name}>: {e}"))?;
            Ok(())
        }
        None if raw.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

fn decode_into(raw: &str, out: &mut String) -> Result<(), &'static str> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .filter(|&s| s <= 10)
            .ok_or("an unterminated entity reference")?;
        let entity = &after[..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or("an unknown entity reference")?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
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
            ("<a>x & y</a>", "in <a>: an unterminated entity reference"),
            ("just text", "text outside the root element"),
            ("", "no element"),
            ("<a/><b/>", "a second root element <b>"),
            ("<a", "unterminated tag"),
        ] {
            assert_eq!(leaves(doc).unwrap_err(), expected, "{doc}");
        }
    }

    #[test]
    fn errors_never_show_text() {
        let err = leaves("<Secret>hunter2 & more</Secret>").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
