//! The one rule for showing text that came from the network (error replies, client names,
//! discovered endpoints, labels of `/scrape` targets) where a person reads it: a log line, an
//! audit record, a terminal. Every character that could forge a line (`\n`, `\r`, U+2028,
//! U+2029), drive a terminal (ESC and the other C0/C1 controls: ANSI and OSC sequences) or make
//! a line read differently from what it is (the bidirectional marks, embeddings, overrides and
//! isolates) is written as `\u{..}`. In the redis layer, the lowest that needs it (frame.rs
//! cleans error replies); the log formatter (main.rs), relief's audit lines and the rendered
//! reports (diagnose/shell.rs `visible`) use it too.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must be escaped before it is shown: controls (C0 with `\n` and `\t`, DEL, C1),
/// the line and paragraph separators, and the bidi formatting characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every [`is_unsafe`] character (but those `keep` accepts) written as `\u{..}`, cut
/// to at most `max_chars` characters of `s` (then `…`). Borrowed when nothing changes.
pub fn escape_with(s: &str, max_chars: usize, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_at = |c: char| is_unsafe(c) && !keep(c);
    let long = s.len() > max_chars && s.chars().nth(max_chars).is_some();
    if !long && !s.chars().any(unsafe_at) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len().min(max_chars.saturating_mul(4)) + 8);
    for (n, c) in s.chars().enumerate() {
        if n == max_chars {
            o.push('…');
            break;
        }
        if unsafe_at(c) {
            let _ = write!(o, "\\u{{{:x}}}", u32::from(c));
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

/// `s` as it may be shown on one line: [`escape_with`], keeping nothing.
pub fn escape(s: &str, max_chars: usize) -> Cow<'_, str> {
    escape_with(s, max_chars, |_| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forging_characters_are_escaped_and_the_rest_is_kept() {
        let hostile = "a\nlevel=INFO fake\r\u{1b}[2J\u{1b}]0;title\u{7}\u{9b}x\u{202e}cba\u{2066}\u{2028}\u{2029}\u{200f}é";
        let got = escape(hostile, 1000);
        assert_eq!(
            got,
            "a\\u{a}level=INFO fake\\u{d}\\u{1b}[2J\\u{1b}]0;title\\u{7}\\u{9b}x\\u{202e}cba\\u{2066}\\u{2028}\\u{2029}\\u{200f}é"
        );
        assert!(!got.chars().any(is_unsafe));
        assert!(matches!(escape("plain text", 100), Cow::Borrowed(_)));
        assert_eq!(escape("abcdef", 3), "abc…");
        assert_eq!(escape("ééé", 3), "ééé");
        assert_eq!(escape_with("a\nb\u{1b}", 10, |c| c == '\n'), "a\nb\\u{1b}");
    }
}
