//! Length-bounded label values.
//!
//! Everything a label carries from Redis (client names, users, commands, addresses, INFO
//! strings) is chosen by whoever can connect to it: `CLIENT SETNAME` accepts names of several
//! MiB, which would otherwise become a label of several MiB on every scrape, stored by
//! Prometheus, and held in the aggregator's maps. A value longer than [`MAX_LABEL_BYTES`] is
//! cut to its first bytes (at a UTF-8 boundary), then `…` and eight hex digits of a hash of the
//! whole value, so that two long values that share their start stay two series. The hash is
//! FNV-1a: fixed, so a value keeps its label across restarts and exporters (a seeded hasher
//! would give every restart new series).

use std::borrow::Cow;

use crate::hash::fnv1a;

/// The longest label value the exporter emits, in bytes.
pub const MAX_LABEL_BYTES: usize = 128;

/// Marks a cut value. Not a byte `CLIENT SETNAME` accepts (it allows `!`..`~` only).
pub const ELLIPSIS: char = '\u{2026}';

const HASH_HEX: usize = 8;

/// Bytes of the value kept before the ellipsis and the hash: the bounded form is at most
/// [`MAX_LABEL_BYTES`] long.
pub const KEPT_BYTES: usize = MAX_LABEL_BYTES - ELLIPSIS.len_utf8() - HASH_HEX;

/// `value` if it is at most [`MAX_LABEL_BYTES`] long, its bounded form otherwise.
pub fn bound(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LABEL_BYTES {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(MAX_LABEL_BYTES);
    bound_into(value, &mut out);
    Cow::Owned(out)
}

/// Writes the bounded form of `value` (meant for values longer than [`MAX_LABEL_BYTES`]) into
/// `out`, replacing its contents. Allocates nothing once `out` has held a bounded value: the
/// aggregator calls it per line with a reused buffer.
pub fn bound_into(value: &str, out: &mut String) {
    out.clear();
    out.push_str(prefix(value, KEPT_BYTES));
    out.push(ELLIPSIS);
    let h = fnv1a(value.as_bytes());
    // Both halves folded in: the 64-bit hash's 32 bits least likely to collide.
    let h = (h ^ (h >> 32)) as u32;
    for shift in (0..HASH_HEX).rev() {
        let nibble = (h >> (4 * shift)) & 0xf;
        out.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
}

/// If `value` is a bounded form made by [`bound`], the part of the original value it kept (a
/// prefix of the original): a printed command can match on it.
pub fn kept_prefix(value: &str) -> Option<&str> {
    let hash_at = value.len().checked_sub(HASH_HEX)?;
    let hash = value.get(hash_at..)?;
    let kept = value.get(..hash_at)?.strip_suffix(ELLIPSIS)?;
    let is_hash = hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (is_hash && kept.len() > KEPT_BYTES - 4 && kept.len() <= KEPT_BYTES).then_some(kept)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    // A UTF-8 char is at most 4 bytes: at most 3 steps back.
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_untouched() {
        let v = "x".repeat(MAX_LABEL_BYTES);
        assert!(matches!(bound(&v), Cow::Borrowed(b) if b == v));
        assert_eq!(kept_prefix(&v), None);
        assert_eq!(kept_prefix("svc…0123abcd"), None);
    }

    #[test]
    fn long_values_are_cut_distinct_and_stable() {
        let a = format!("{}a", "n".repeat(4 << 20));
        let b = format!("{}b", "n".repeat(4 << 20));
        let (ca, cb) = (bound(&a), bound(&b));
        assert_eq!(ca.len(), MAX_LABEL_BYTES);
        assert_ne!(ca, cb);
        assert!(ca.starts_with(&"n".repeat(KEPT_BYTES)));
        assert_eq!(kept_prefix(&ca), Some(&a[..KEPT_BYTES]));
        // The hash is of the whole value: fixed for a fixed value.
        let one = format!("{}!", "x".repeat(200));
        let h = fnv1a(one.as_bytes());
        let expected = format!("{}…{:08x}", "x".repeat(KEPT_BYTES), (h ^ (h >> 32)) as u32);
        assert_eq!(bound(&one), expected);
    }

    #[test]
    fn cuts_at_a_char_boundary() {
        for lead in 0..4 {
            let v = format!("{}{}", "a".repeat(lead), "é€😀".repeat(100));
            let c = bound(&v);
            assert!(c.len() <= MAX_LABEL_BYTES, "{}", c.len());
            let kept = kept_prefix(&c).expect("a bounded form");
            assert!(v.starts_with(kept));
            assert!(kept.len() + 4 > KEPT_BYTES);
        }
    }

    #[test]
    fn bound_into_reuses_its_buffer() {
        let mut out = String::new();
        bound_into(&"y".repeat(1000), &mut out);
        let cap = out.capacity();
        bound_into(&"z".repeat(5000), &mut out);
        assert_eq!(out.capacity(), cap);
        assert_eq!(out, bound(&"z".repeat(5000)));
    }
}
