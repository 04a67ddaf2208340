//! The shape of src/: modules depend on each other in one direction only, layer by layer.
//!
//! [`LAYERS`] declares the layers bottom-up and the modules of each. A module may use modules of
//! its own layer and of the layers below; a reference to a layer above is a violation, and so is
//! any import cycle between the declared modules (even within one layer). References are read
//! from the source text: `use crate::…` (with `{…}` groups), `crate::…` and `super::…` paths in
//! code, `redis_clients_exporter::…` in src/main.rs, and `child::…` paths to a file's own
//! `mod child;`. Comments, strings and `#[cfg(test)]` items are left out: tests may reach
//! anywhere for their fixtures.
//!
//! [`KNOWN_VIOLATIONS`] lists today's violations. The test reports them and fails when one is
//! added and when one is gone, so the list can only shrink: remove an entry when the code stops
//! violating it. When modules move (say `poller.rs` into `targets/poller.rs`), update
//! [`LAYERS`]: every file of src/ must belong to a declared module.
//!
//! Also checked here: `anyhow` only in src/main.rs, and no `unsafe` anywhere in src/ (the
//! `unsafe_code = "forbid"` lint says the same to the compiler). `unwrap()`/`expect()` outside
//! tests are denied by the clippy lints in Cargo.toml.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up, each with the top-level modules (folders, or files of src/) it
/// holds. `crate` is src/lib.rs itself and `main` is src/main.rs (the binary). Every file of
/// src/ is its own unit: a reference from one file to another is an edge, so a cycle between
/// two files of one folder fails as one between layers would. One exception, said where it
/// is checked ([`edges_of`]): a file may use the modules it declares (`mod child;`: a folder's
/// `mod.rs` wiring its parts) while they use its shared types.
const LAYERS: &[(&str, &[&str])] = &[
    // The one stable hash (FNV-1a): label hashes and shard ownership.
    ("hash", &["hash"]),
    // Configuration: layering, targets, secrets, topology and `/scrape` settings.
    ("config", &["config"]),
    // Talking to Redis and reading its replies: RESP, the connection, TLS, INFO, CLIENT LIST parsing.
    ("redis", &["redis"]),
    // Aggregation of CLIENT LIST, the bounded history, synthetic replies for benches and tests.
    ("analysis", &["analysis"]),
    // Who a source address is: static map, kube-state-metrics through Prometheus, reverse DNS;
    // a background refresh publishing a snapshot the aggregator reads through its trait.
    ("identity", &["identity"]),
    // The diagnosis: one file per cause, remediation steps and shell quoting.
    ("diagnose", &["diagnose"]),
    // The per-target machinery: store, pollers, reconciliation, discovery, `/scrape` targets,
    // the jobs run on held connections, and the one-shot `diagnose` command's observation.
    ("targets", &["targets"]),
    // Acting on a full Redis through the pollers' held connections.
    ("relief", &["relief"]),
    // HTTP: the server and its routes, relief's handlers, metric families, report rendering.
    ("web", &["web"]),
    // The binary, the library's root, and the subcommands' library side.
    ("entry", &["crate", "main", "cli"]),
];

/// Today's violations, reported but tolerated: `a -> b` is a reference from module `a` to a
/// module `b` of a higher layer; `cycle: a, b` is a set of modules that import each other.
/// The test fails until this list is exactly what it finds.
const KNOWN_VIOLATIONS: &[&str] = &[];

/// Crates besides `redis_clients_exporter` whose paths may follow `use`: not ours, ignored.
const CRATE_ROOT: &str = "crate";
const LIB_NAME: &str = "redis_clients_exporter";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of Rust source that matter for paths, with their line numbers: comments,
/// string and char literals and lifetimes are dropped.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let count_lines = |from: usize, to: usize| b[from..to].iter().filter(|&&c| c == b'\n').count();
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                line += count_lines(start, i.min(b.len()));
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                line += count_lines(start, i.min(b.len()));
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    // Past the quote, the backslash and the escaped character.
                    i += 3;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + ch_len) == Some(&b'\'') {
                        i += 2 + ch_len;
                    } else {
                        i += 1;
                        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                            i += 1;
                        }
                    }
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &src[start..i];
                // Raw strings and byte strings: r"..", r#".."#, b"..", br#".."#.
                let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
                if matches!(word, "r" | "br" | "b" | "c" | "cr")
                    && b.get(i + hashes) == Some(&b'"')
                    && (hashes == 0 || word.contains('r'))
                {
                    let raw = word.contains('r');
                    let start = i;
                    i += hashes + 1;
                    let closing: Vec<u8> = std::iter::once(b'"')
                        .chain(std::iter::repeat_n(b'#', hashes))
                        .collect();
                    while i < b.len() && !b[i..].starts_with(&closing) {
                        i += if !raw && b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += closing.len();
                    line += count_lines(start, i.min(b.len()));
                } else if word == "b" && b.get(i) == Some(&b'\'') {
                    // b'x': the quote is handled as a char literal on the next turn.
                } else {
                    let word = word.strip_prefix("r#").unwrap_or(word);
                    out.push((Tok::Ident(word.to_string()), line));
                }
            }
            _ if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    // Stop at `..` (a range) and at a method call on a literal (`1.max`).
                    if b[i] == b'.' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        break;
                    }
                    i += 1;
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push((Tok::Path, line));
                i += 2;
            }
            _ => {
                out.push((Tok::Punct(c as char), line));
                i += 1;
            }
        }
    }
    out
}

fn is_ident(t: Option<&(Tok, usize)>, name: &str) -> bool {
    matches!(t, Some((Tok::Ident(w), _)) if w == name)
}

fn is_punct(t: Option<&(Tok, usize)>, c: char) -> bool {
    matches!(t, Some((Tok::Punct(p), _)) if *p == c)
}

/// The tokens without `#[cfg(test)]` items (a `mod tests { .. }`, a test-only fn or `use`).
fn without_test_items(toks: Vec<(Tok, usize)>) -> Vec<(Tok, usize)> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let cfg_test = is_punct(toks.get(i), '#')
            && is_punct(toks.get(i + 1), '[')
            && is_ident(toks.get(i + 2), "cfg")
            && is_punct(toks.get(i + 3), '(')
            && is_ident(toks.get(i + 4), "test")
            && is_punct(toks.get(i + 5), ')')
            && is_punct(toks.get(i + 6), ']');
        if !cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        // Skip the item: up to its `;` or its closing brace, whichever comes first at depth 0.
        i += 7;
        let mut depth = 0usize;
        while i < toks.len() {
            match &toks[i].0 {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// One reference from a file to a module path (segments below `crate`).
#[derive(Debug)]
struct Reference {
    target: Vec<String>,
    line: usize,
}

/// The module path of a file below src/: `a/b.rs` and `a/b/mod.rs` are `a::b`; src/lib.rs is
/// the crate root (empty) and src/main.rs the binary.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return Vec::new();
    }
    parts
}

/// Expands a `use` tree starting at token `i` (after `use`): every full path it names.
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::Ident(w)) if w != "as" => {
                path.push(w.clone());
                *i += 1;
            }
            Some(Tok::Path) => *i += 1,
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    if is_punct(toks.get(*i), '}') {
                        *i += 1;
                        break;
                    }
                    use_tree(toks, i, path.clone(), out);
                    if is_punct(toks.get(*i), ',') {
                        *i += 1;
                    } else if toks.get(*i).is_none() {
                        return;
                    }
                }
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(path);
                return;
            }
            Some(Tok::Ident(_)) => {
                // `as alias`: the path is complete.
                *i += 2;
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

/// Resolves a path's first segment for a file of module `module` (`inline` levels deep in
/// inline `mod x { }` blocks): `crate`, `super`, `self`, the library's name in the binary, or
/// one of the file's own `mod child;`. `None` for other crates and local names.
fn resolve(
    path: &[String],
    module: &[String],
    inline: usize,
    children: &BTreeSet<String>,
    is_bin: bool,
) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" if !is_bin => Vec::new(),
        LIB_NAME if is_bin => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let mut rest = rest;
            let mut up = 1usize;
            while rest.first().is_some_and(|s| s == "super") {
                up += 1;
                rest = &rest[1..];
            }
            // Inside an inline `mod`, the first `super`s stay in this file.
            let up = up.saturating_sub(inline);
            let mut m = module.to_vec();
            m.truncate(m.len().saturating_sub(up));
            m.extend(rest.iter().cloned());
            return Some(m);
        }
        c if inline == 0 && children.contains(c) => {
            let mut m = module.to_vec();
            m.push(c.to_string());
            m.extend(rest.iter().cloned());
            return Some(m);
        }
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Every module reference in one file.
fn references(src: &str, module: &[String], is_bin: bool) -> Vec<Reference> {
    let toks = without_test_items(tokens(src));
    // The file's own `mod child;` declarations.
    let mut children = BTreeSet::new();
    for w in toks.windows(3) {
        if let [(Tok::Ident(m), _), (Tok::Ident(name), _), (Tok::Punct(';'), _)] = w {
            if m == "mod" {
                children.insert(name.clone());
            }
        }
    }
    let mut out = Vec::new();
    // Inline `mod x {` blocks, as the brace depth at which each opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some((Tok::Ident(_), _)), true) =
                    (toks.get(i + 1), is_punct(toks.get(i + 2), '{'))
                {
                    inline.push(depth);
                }
            }
            Tok::Ident(w) if w == "use" => {
                let mut j = i + 1;
                if matches!(toks.get(j), Some((Tok::Path, _))) {
                    j += 1;
                }
                let mut paths = Vec::new();
                use_tree(&toks, &mut j, Vec::new(), &mut paths);
                for p in paths {
                    if let Some(target) = resolve(&p, module, inline.len(), &children, is_bin) {
                        out.push(Reference {
                            target,
                            line: *line,
                        });
                    }
                }
                i = j;
                continue;
            }
            Tok::Ident(w)
                if (i == 0 || toks[i - 1].0 != Tok::Path)
                    && matches!(toks.get(i + 1), Some((Tok::Path, _))) =>
            {
                // A path in code: `crate::x::y`, `super::x`, `child::f`.
                let mut path = vec![w.clone()];
                let mut j = i + 1;
                while matches!(toks.get(j), Some((Tok::Path, _))) {
                    match toks.get(j + 1) {
                        Some((Tok::Ident(s), _)) => {
                            path.push(s.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if let Some(target) = resolve(&path, module, inline.len(), &children, is_bin) {
                    out.push(Reference {
                        target,
                        line: *line,
                    });
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The unit (a file's module) that a module path belongs to: the longest prefix that is a
/// file; the crate root's own items belong to `crate`.
fn unit_of(path: &[String], units: &BTreeMap<Vec<String>, Unit>) -> Option<Vec<String>> {
    let found = (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| units.contains_key(p))?;
    // `crate::config::X` with no config file (the checker's own small trees): not a root item.
    let names_a_top = path
        .first()
        .is_some_and(|t| t != CRATE_ROOT && layer_of_module(&path[..1]).is_some());
    (!found.is_empty() || !names_a_top).then_some(found)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// One file: its layer (index into [`LAYERS`]), its name (`redis::connection`, `crate`,
/// `main`) and the modules it declares (`mod child;`).
#[derive(Debug)]
struct Unit {
    layer: usize,
    name: String,
    children: BTreeSet<Vec<String>>,
}

/// The layer of a file's module: that of its first segment (`crate` for src/lib.rs).
fn layer_of_module(module: &[String]) -> Option<usize> {
    let top = module.first().map_or(CRATE_ROOT, String::as_str);
    LAYERS.iter().position(|(_, tops)| tops.contains(&top))
}

/// Every file as a unit, or the files that belong to no layer.
fn units_of(files: &[(PathBuf, String)]) -> Result<BTreeMap<Vec<String>, Unit>, Vec<String>> {
    let mut units = BTreeMap::new();
    let mut unplaced = Vec::new();
    for (rel, src) in files {
        let module = module_of(rel);
        let Some(layer) = layer_of_module(&module) else {
            unplaced.push(format!(
                "src/{} (module `{}`)",
                rel.display(),
                module.join("::")
            ));
            continue;
        };
        let name = if module.is_empty() {
            CRATE_ROOT.to_string()
        } else {
            module.join("::")
        };
        let children = declared_children(src)
            .into_iter()
            .map(|c| {
                let mut m = module.clone();
                m.push(c);
                m
            })
            .collect();
        units.insert(
            module,
            Unit {
                layer,
                name,
                children,
            },
        );
    }
    for (_, tops) in LAYERS {
        for top in *tops {
            assert!(
                LAYERS
                    .iter()
                    .flat_map(|(_, t)| t.iter())
                    .filter(|t| *t == top)
                    .count()
                    == 1,
                "`{top}` is declared twice in LAYERS"
            );
        }
    }
    if unplaced.is_empty() {
        Ok(units)
    } else {
        Err(unplaced)
    }
}

/// The `mod child;` declarations of a file (test-only ones left out).
fn declared_children(src: &str) -> BTreeSet<String> {
    let toks = without_test_items(tokens(src));
    let mut children = BTreeSet::new();
    for w in toks.windows(3) {
        if let [(Tok::Ident(m), _), (Tok::Ident(name), _), (Tok::Punct(';'), _)] = w {
            if m == "mod" {
                children.insert(name.clone());
            }
        }
    }
    children
}

/// Edges between files: (from, to) -> first `file:line` that makes it.
type Edges = BTreeMap<(String, String), String>;

/// Reads src/ and returns the edges between its files and each file's layer, or the files that
/// belong to no layer. A reference from a file to a module it declares (`mod child;`) is left
/// out: a folder's `mod.rs` wires its parts, which use the types it shares; every other
/// reference between two files is an edge, so two sibling files that use each other are a
/// cycle.
fn edges_of(files: &[(PathBuf, String)]) -> Result<(Edges, BTreeMap<String, usize>), Vec<String>> {
    let units = units_of(files)?;
    let mut edges = Edges::new();
    for (rel, src) in files {
        let module = module_of(rel);
        let is_bin = rel == Path::new("main.rs");
        let from = &units[&module];
        for r in references(src, &module, is_bin) {
            let Some(to) = unit_of(&r.target, &units) else {
                continue;
            };
            if to == module || from.children.contains(&to) {
                continue;
            }
            edges
                .entry((from.name.clone(), units[&to].name.clone()))
                .or_insert_with(|| format!("src/{}:{}", rel.display(), r.line));
        }
    }
    let layers = units.values().map(|u| (u.name.clone(), u.layer)).collect();
    Ok((edges, layers))
}

/// Strongly connected components of more than one module (Tarjan's algorithm), each sorted.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&str> = edges
        .keys()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let nodes: Vec<&str> = nodes.into_iter().collect();
    let index_of = |n: &str| nodes.iter().position(|m| *m == n).unwrap_or(usize::MAX);
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            edges
                .keys()
                .filter(|(a, _)| a == n)
                .map(|(_, b)| index_of(b))
                .collect()
        })
        .collect();
    struct T<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T<'_>, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on_stack[v] = true;
        for &w in &t.adj[v] {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on_stack[w] => t.low[v] = t.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on_stack[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                t.out.push(scc);
            }
        }
    }
    let n = nodes.len();
    let mut t = T {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    let mut out: Vec<Vec<String>> = t
        .out
        .into_iter()
        .map(|scc| {
            let mut names: Vec<String> = scc.into_iter().map(|i| nodes[i].to_string()).collect();
            names.sort_unstable();
            names
        })
        .collect();
    out.sort();
    out
}

/// Every violation of the layer order, with where it comes from.
fn violations((edges, layers): &(Edges, BTreeMap<String, usize>)) -> BTreeMap<String, String> {
    let layer_of = |name: &str| layers.get(name).copied().unwrap_or(usize::MAX);
    let mut found = BTreeMap::new();
    for ((from, to), at) in edges {
        let (lf, lt) = (layer_of(from), layer_of(to));
        if lt > lf {
            found.insert(
                format!("{from} -> {to}"),
                format!(
                    "{at}: `{from}` (layer {}) uses `{to}` (layer {}, above it)",
                    LAYERS[lf].0, LAYERS[lt].0
                ),
            );
        }
    }
    for scc in cycles(edges) {
        let at: Vec<String> = edges
            .iter()
            .filter(|((a, b), _)| scc.contains(a) && scc.contains(b))
            .map(|((a, b), at)| format!("{a} -> {b} at {at}"))
            .collect();
        found.insert(format!("cycle: {}", scc.join(", ")), at.join("; "));
    }
    found
}

fn read_src() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(&src_dir(), &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let rel = p.strip_prefix(src_dir()).expect("below src/").to_path_buf();
            (rel, text)
        })
        .collect()
}

/// The message for `found` against the expected list, or `None` when they are the same.
fn compare(found: &BTreeMap<String, String>, known: &[&str]) -> Option<String> {
    let known: BTreeSet<&str> = known.iter().copied().collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains(k.as_str()))
        .map(|(k, why)| format!("  NEW  {k}\n       {why}"))
        .collect();
    let gone: Vec<String> = known
        .iter()
        .filter(|k| !found.contains_key(**k))
        .map(|k| format!("  GONE {k}: remove it from KNOWN_VIOLATIONS"))
        .collect();
    if new.is_empty() && gone.is_empty() {
        return None;
    }
    Some(format!(
        "the dependency direction of src/ (tests/architecture.rs LAYERS) changed:\n{}\n{}",
        new.join("\n"),
        gone.join("\n")
    ))
}

#[test]
fn modules_depend_on_their_own_and_lower_layers_only() {
    let graph = edges_of(&read_src()).unwrap_or_else(|unplaced| {
        panic!(
            "these files belong to no module of LAYERS in tests/architecture.rs; add them:\n  {}",
            unplaced.join("\n  ")
        )
    });
    // The reading must see the code: the poller uses the configuration, the HTTP server the
    // metrics, the binary the library.
    for (a, b) in [
        ("targets::poller", "config"),
        ("web::http", "web::metrics"),
        ("main", "crate"),
        ("relief::preview", "relief::held"),
    ] {
        assert!(
            graph.0.contains_key(&(a.to_string(), b.to_string())),
            "no {a} -> {b} edge found: {:?}",
            graph.0
        );
    }
    let found = violations(&graph);
    for (k, why) in &found {
        println!("tolerated (KNOWN_VIOLATIONS): {k}\n    {why}");
    }
    if let Some(msg) = compare(&found, KNOWN_VIOLATIONS) {
        panic!("{msg}");
    }
}

/// The checker itself, on small made-up trees: a violation it cannot see would make the test
/// above pass on anything.
#[test]
fn the_checker_finds_upward_references_and_cycles() {
    let files = |list: &[(&str, &str)]| -> Vec<(PathBuf, String)> {
        list.iter()
            .map(|(p, s)| (PathBuf::from(p), s.to_string()))
            .collect()
    };
    // Clean: the lower layers only, through every kind of path, plus test code that may reach up.
    let clean = files(&[
        ("lib.rs", "pub mod config; pub mod redis;\nuse crate::web::http::router;\n"),
        (
            "redis/info.rs",
            "use crate::{config::Target, redis::client_list::{self, ClientType}};\n",
        ),
        (
            "targets/poller.rs",
            "fn f() { let s = \"crate::web::http::x\"; // crate::web::http\n crate::redis::tls::client_config(); }\n#[cfg(test)]\nmod tests { use super::*; use crate::web::http::router; }\n",
        ),
        ("web/http.rs", "use super::metrics::render;\nfn g<'a>(c: &'a str) -> char { 'x' }\n"),
        (
            "main.rs",
            "use redis_clients_exporter::{config, targets::triage};\n",
        ),
    ]);
    let graph = edges_of(&clean).expect("all placed");
    assert_eq!(violations(&graph), BTreeMap::new(), "{graph:?}");
    let has = |a: &str, b: &str| graph.0.contains_key(&(a.to_string(), b.to_string()));
    assert!(has("crate", "web::http"), "{graph:?}");
    assert!(
        !has("targets::poller", "web::http"),
        "test code or a string counted: {graph:?}"
    );

    // With the files there, each reference lands on its file.
    let placed = files(&[
        ("config/mod.rs", "pub mod topology;\nuse topology::Group;\n"),
        ("config/topology.rs", "use super::invalid;\n"),
        ("redis/client_list.rs", ""),
        (
            "redis/info.rs",
            "use crate::{config::Target, redis::client_list::{self, ClientType}};\n",
        ),
        ("web/metrics.rs", ""),
        ("web/http.rs", "use super::metrics::render;\n"),
        ("targets/triage.rs", ""),
        (
            "main.rs",
            "use redis_clients_exporter::{config, targets::triage};\n",
        ),
    ]);
    let graph = edges_of(&placed).expect("all placed");
    let has = |a: &str, b: &str| graph.0.contains_key(&(a.to_string(), b.to_string()));
    assert!(has("redis::info", "config") && has("redis::info", "redis::client_list"));
    assert!(has("web::http", "web::metrics") && has("main", "targets::triage"));
    // A folder's mod.rs uses the parts it declares, which use its shared types: no cycle.
    assert!(has("config::topology", "config") && !has("config", "config::topology"));
    assert_eq!(violations(&graph), BTreeMap::new(), "{graph:?}");

    // An upward `use` in a group, an upward path in code, and a cycle.
    let bad = files(&[
        (
            "redis/info.rs",
            "use crate::{analysis::aggregate::{Aggregator}, config};\n",
        ),
        (
            "config/mod.rs",
            "fn f() { let _ = crate::redis::info::Info::parse(\"\"); }\n",
        ),
        ("analysis/aggregate.rs", ""),
    ]);
    let found = violations(&edges_of(&bad).expect("all placed"));
    let keys: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "config -> redis::info",
            "cycle: config, redis::info",
            "redis::info -> analysis::aggregate"
        ],
        "{found:?}"
    );
    assert!(
        found["config -> redis::info"].starts_with("src/config/mod.rs:1:"),
        "{found:?}"
    );
    assert!(compare(
        &found,
        &["config -> redis::info", "cycle: config, redis::info"]
    )
    .is_some());
    assert!(compare(
        &found,
        &[
            "config -> redis::info",
            "cycle: config, redis::info",
            "redis::info -> analysis::aggregate"
        ]
    )
    .is_none());
    assert!(
        compare(&BTreeMap::new(), &["redis::info -> analysis::aggregate"])
            .is_some_and(|m| m.contains("GONE"))
    );

    // Two files of one folder importing each other: a cycle too.
    let twins = files(&[
        ("targets/mod.rs", "pub mod poller;\npub mod state;\n"),
        ("targets/state.rs", "use crate::targets::poller::Poller;\n"),
        ("targets/poller.rs", "use super::state::Store;\n"),
    ]);
    let found = violations(&edges_of(&twins).expect("all placed"));
    assert!(
        found.contains_key("cycle: targets::poller, targets::state"),
        "{found:?}"
    );

    // A file in no declared module is an error, not a silent pass.
    let unplaced = edges_of(&files(&[("sessions.rs", "")])).expect_err("unplaced");
    assert_eq!(unplaced.len(), 1, "{unplaced:?}");
    // Folders: `a/b.rs` belongs to `a` when `a` is declared, and `super` climbs out of it.
    assert_eq!(module_of(Path::new("a/b/mod.rs")), ["a", "b"]);
    let r = references(
        "use super::config::X;",
        &["diagnose".into(), "leak".into()],
        false,
    );
    assert_eq!(r[0].target, ["diagnose", "config", "X"]);
}

/// Code lines of a file (comments and strings removed), to look for words in.
fn code_words(src: &str) -> BTreeSet<String> {
    tokens(src)
        .into_iter()
        .filter_map(|(t, _)| match t {
            Tok::Ident(w) => Some(w),
            _ => None,
        })
        .collect()
}

#[test]
fn anyhow_only_in_main_and_no_unsafe() {
    let mut bad = Vec::new();
    for (rel, src) in read_src() {
        let words = code_words(&src);
        if words.contains("anyhow") && rel != Path::new("main.rs") {
            bad.push(format!(
                "src/{}: uses anyhow (library modules return thiserror types)",
                rel.display()
            ));
        }
        if words.contains("unsafe") {
            bad.push(format!("src/{}: unsafe code", rel.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The words are found where they are: main.rs does use anyhow.
    let main = std::fs::read_to_string(src_dir().join("main.rs")).expect("src/main.rs");
    assert!(code_words(&main).contains("anyhow"));
    assert!(!code_words("// unsafe\nlet s = \"unsafe\";").contains("unsafe"));
}
