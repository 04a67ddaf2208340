//! The one HTML escape of the exporter (text and attribute values, inline SVG included) and the
//! percent-encoding of query values: what every page builds its markup from.

use std::fmt::Write;

use crate::diagnose::shell::is_invisible;

/// HTML text or attribute value: the five markup characters escaped, invisible characters
/// (bidi overrides, zero-width) shown as `\u{..}`. The one HTML escape of the exporter.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if is_invisible(c) => {
                let _ = write!(o, "\\u{{{:x}}}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}
