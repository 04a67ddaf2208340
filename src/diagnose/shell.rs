//! Shell text for the commands the diagnosis prints. Everything that comes from Redis (client
//! names, users, addresses) or from a URL (hosts, users, socket paths) is hostile: a client may
//! call itself `x';touch${IFS}/tmp/PWNED;echo'`, and an SRE pastes what we print into a shell
//! at 3 am. So every such value goes through [`quote`], the one place that turns bytes into a
//! shell word, and the pipelines below are built only from quoted values, integers and our own
//! constant awk programs.
//!
//! The pipelines also fail loudly: `redis-cli` prints `ERR max number of clients reached` on
//! stdout and exits 0, so each pipeline ends in an awk check that accepts only the replies it
//! expects and exits 1 on anything else (a refusal, a lost connection, a wrong password).

use std::fmt::Write;

/// Bytes that never need quoting in a word that is not in command position (Python's
/// `shlex.quote` set): no glob, expansion, tilde, history or separator character.
fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b)
}

/// Quotes bytes as ONE shell word that the shell turns back into exactly these bytes (NUL
/// excepted: no argument can hold it).
///
/// - Only safe bytes: unchanged (`127.0.0.1`, `billing-worker`).
/// - Printable ASCII: POSIX single quotes, a `'` written as `'\''`. Inside single quotes
///   nothing is special (`$`, `` ` ``, `\`, `!` in scripts), so this is the portable form.
/// - Anything else (control bytes, DEL, non-ASCII, invalid UTF-8): `$'...'` with `\xHH`
///   escapes (bash, zsh, ksh, busybox, POSIX.1-2024 sh). Printing those bytes raw could move
///   the cursor, rewrite the terminal's title or hide text (bidi overrides), and a newline
///   would split the command; Redis refuses such bytes in client names, but ACL user names
///   and URLs may hold them.
pub fn quote(s: impl AsRef<[u8]>) -> String {
    let s = s.as_ref();
    if !s.is_empty() && s.iter().copied().all(is_bare) {
        // Only ASCII bytes: the conversion cannot fail.
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut o = String::with_capacity(s.len() + 2);
    if s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        o.push('\'');
        for &b in s {
            if b == b'\'' {
                o.push_str("'\\''");
            } else {
                o.push(char::from(b));
            }
        }
        o.push('\'');
    } else {
        o.push_str("$'");
        for &b in s {
            match b {
                b'\\' => o.push_str("\\\\"),
                b'\'' => o.push_str("\\'"),
                0x20..=0x7e => o.push(char::from(b)),
                // Exactly two hex digits, so a following hex-digit character stays itself.
                _ => {
                    let _ = write!(o, "\\x{b:02x}");
                }
            }
        }
        o.push('\'');
    }
    o
}

/// Checks `redis-cli`'s output (stdout and stderr) of integer replies, e.g. `CLIENT KILL`
/// counts: sums them, and exits 1 on anything else or on no reply at all. No `'` inside: it is
/// printed between single quotes.
const CHECK_KILLED: &str = r#"/^[0-9]+$/{n+=$1;next} /max number of clients/{full=1} NF{print "redis-cli: " $0 >"/dev/stderr";bad=1} END{if(bad||!NR){print (full?"FAILED: the server is full: no new connection can run this until slots are freed (restart the culprit service)":"FAILED: Redis refused this or could not be reached") >"/dev/stderr";exit 1} print n " connection(s) closed"}"#;

/// `cmd`, whose replies are integers, checked: prints how many connections it closed and
/// exits 1 when Redis refused it (full, auth, unreachable) instead of redis-cli's silent 0.
pub fn checked(cmd: &str) -> String {
    format!("{cmd} 2>&1 | awk {}", quote(CHECK_KILLED))
}

/// Checks `redis-cli`'s output of `OK` replies (`CONFIG SET`): exits 1 on anything else, e.g.
/// a full server or Redis refusing the value. No `'` inside: it is printed between single
/// quotes.
const CHECK_OK: &str = r#"/^OK$/{ok++;next} /max number of clients/{full=1} NF{print "redis-cli: " $0 >"/dev/stderr";bad=1} END{if(bad||!ok){print (full?"FAILED: the server is full: no new connection can run this until slots are freed (restart the culprit service)":"FAILED: Redis refused this or could not be reached") >"/dev/stderr";exit 1} print "OK"}"#;

/// `cmd`, whose replies are `OK`, checked: exits 1 when Redis refused it (full, a value it
/// cannot apply, auth, unreachable) instead of redis-cli's silent 0.
pub fn checked_ok(cmd: &str) -> String {
    format!("{cmd} 2>&1 | awk {}", quote(CHECK_OK))
}

/// One command that closes exactly these connections: `CLIENT KILL ID` takes one id per call
/// (before Valkey 8 / Redis 8), so the ids go to one `redis-cli` on stdin, one connection for
/// all of them. The ids are integers the exporter parsed, never text from Redis.
pub fn kill_ids(cli: &str, ids: &[u64]) -> String {
    let mut list = String::with_capacity(ids.len() * 8);
    for id in ids {
        let _ = write!(list, " {id}");
    }
    checked(&format!("printf 'CLIENT KILL ID %s\\n'{list} | {cli}"))
}

/// Selects connections from a live `CLIENT LIST` and prints `CLIENT KILL ID n` for each; `cond`
/// is an awk condition over `f[field]` (the first occurrence of each field, so a later field's
/// value cannot shadow an earlier one) and `a` (the source IP, as the exporter computes it).
/// Any line that is not a client line (a refusal, an error) fails the selection with exit 1.
pub(crate) fn select_program(cond: &str) -> String {
    format!(
        r#"!NF{{next}} !/^id=[0-9]+ /{{print "redis-cli: " $0 >"/dev/stderr";bad=1;next}} {{split("",f);for(i=1;i<=NF;i++){{p=index($i,"=");k=substr($i,1,p-1);if(p>1&&!(k in f))f[k]=substr($i,p+1)}} a=f["addr"];if(a~/^\//||f["flags"]~/U/)a="unix";else if(a~/^\[/){{a=substr(a,2);sub(/\].*$/,"",a)}}else sub(/:[^:]*$/,"",a); if(({cond})&&f["id"]~/^[0-9]+$/){{print "CLIENT KILL ID " f["id"];m++}}}} END{{if(bad||!NR){{print "FAILED: CLIENT LIST was refused; a full server lets no new connection run this until slots are freed (restart the culprit service)" >"/dev/stderr";exit 1}} if(!m)print "no connection matches (any more)" >"/dev/stderr"}}"#
    )
}

/// A pipeline that re-selects connections from a live `CLIENT LIST` and closes them. `env` are
/// the values the condition reads as `ENVIRON["NAME"]`: passed through the environment, since
/// `awk -v` would interpret backslashes in them, and compared as strings (`(x "")`), since
/// awk compares two numeric-looking strings as numbers. Exits 1 when either redis-cli call is
/// refused; exits 0 with nothing to close.
pub fn reselect_and_kill(cli: &str, env: &[(&str, &str)], cond: &str) -> String {
    let mut vars = String::new();
    for (k, v) in env {
        debug_assert!(k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        let _ = write!(vars, "{k}={} ", quote(v));
    }
    format!(
        "(ids=$({cli} CLIENT LIST 2>&1 | {vars}awk {}) && {{ [ -z \"$ids\" ] || printf '%s\\n' \"$ids\" | {}; }})",
        quote(select_program(cond)),
        checked(cli)
    )
}

/// Characters that change how a terminal or a page shows text instead of showing themselves:
/// the one rule of `redis::untrusted` ([`crate::redis::untrusted::is_unsafe`]) but the newline,
/// which a multi-line report keeps.
pub fn is_invisible(c: char) -> bool {
    c != '\n' && crate::redis::untrusted::is_unsafe(c)
}

/// `s` with every [`is_invisible`] character written as `\u{..}`: what Redis sent cannot
/// move the cursor, retitle the terminal or reorder a line. Commands never need this (they are
/// printable ASCII by construction, see [`crate::diagnose::shell::quote`]); names and labels might.
pub fn visible(s: &str) -> String {
    crate::redis::untrusted::escape_with(s, usize::MAX, |c| c == '\n').into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::ffi::OsStrExt;
    use std::process::Command;

    fn bash_roundtrip(bytes: &[u8]) -> Vec<u8> {
        let script = format!("printf %s {}", quote(bytes));
        let out = Command::new("bash")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(script.as_bytes()))
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{script}: {out:?}");
        out.stdout
    }

    #[test]
    fn known_forms() {
        assert_eq!(quote("127.0.0.1"), "127.0.0.1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(
            quote("x';touch${IFS}/tmp/P;echo'"),
            r"'x'\'';touch${IFS}/tmp/P;echo'\'''"
        );
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("a\nb"), r"$'a\x0ab'");
        assert_eq!(quote(b"\x1b]0;t\x07'\\"), r"$'\x1b]0;t\x07\'\\'");
        assert_eq!(quote("é"), r"$'\xc3\xa9'");
    }

    #[test]
    fn hostile_names_round_trip() {
        for s in [
            "x';touch${IFS}/tmp/PWNED_unit;echo'",
            "$(touch${IFS}/tmp/PWNED_unit)",
            "`touch${IFS}/tmp/PWNED_unit`",
            "a|b&c;d\"e\\f'g!h*?[x]{y}<z>~#",
            "'",
            "''\\'",
            "\x01\x7f\x1b[31m\u{202e}",
        ] {
            assert_eq!(bash_roundtrip(s.as_bytes()), s.as_bytes(), "{s}");
        }
    }

    #[test]
    fn output_is_one_printable_ascii_line() {
        for s in ["a\nb", "\r", "\u{9b}", "\u{202e}x", "\t"] {
            let q = quote(s);
            assert!(q.bytes().all(|b| (0x20..0x7f).contains(&b)), "{q:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn bash_gives_back_the_bytes(bytes in proptest::collection::vec(1u8..=255, 0..40)) {
            prop_assert_eq!(bash_roundtrip(&bytes), bytes);
        }
    }
}
