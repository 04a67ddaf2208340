//! The CLIENT LIST fields beyond who holds the connections (issue 19): connections per client
//! library and version (`lib-name`/`lib-ver`, set by the client with CLIENT SETINFO on Redis
//! 7.2+ and Valkey), per listening port (`laddr`), and the per-connection buffers and totals an
//! SRE chasing exhaustion asks for (`qbuf`, `argv-mem`, `multi-mem`, `obl`/`oll`, `watch`,
//! `tot-cmds`, `tot-net-in`/`tot-net-out`), plus the connections whose replies wait for a
//! socket that does not drain (`events=rw` with output pending).
//!
//! Part of the [`Aggregator`](crate::analysis::aggregate::Aggregator)'s snapshot: the same reused maps
//! (no allocation per line once warm; values bounded before the lookup), the same top K +
//! `other` folding. A submodule of `aggregate` (it uses the aggregator's maps, and the aggregator uses it).

use super::{bounded, fold, Count, Counts};
use crate::redis::client_list::{ClientEntry, FlagSet};

/// The library value of a connection that did not set one (or a server without the field).
pub const UNSET: &str = "unset";

/// One client library and version: its connections, those idle at least the threshold, and
/// their memory (`tot-mem`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LibStats {
    pub connections: u64,
    pub idle_connections: u64,
    pub memory_bytes: u64,
}

impl Count for LibStats {
    fn weight(&self) -> u64 {
        self.connections
    }
    fn absorb(&mut self, o: &Self) {
        self.connections = self.connections.saturating_add(o.connections);
        self.idle_connections = self.idle_connections.saturating_add(o.idle_connections);
        self.memory_bytes = self.memory_bytes.saturating_add(o.memory_bytes);
    }
}

/// Whether a connection's replies wait for its socket: the server installed a write handler
/// (`events` holds `w`: the kernel buffer took less than was pending) and output is queued.
/// A reader that does not read stays like this; a busy one passes through it. Version
/// independent, unlike `omem` (see docs/diagnosis.md: Valkey 9 counts replies it sends by
/// reference only by their headers).
pub fn output_stalled(e: &ClientEntry<'_>) -> bool {
    let pending = e.omem.unwrap_or(0) > 0 || e.oll.unwrap_or(0) > 0 || e.obl.unwrap_or(0) > 0;
    pending && e.events.is_some_and(|ev| ev.as_bytes().contains(&b'w'))
}

/// A sum over the lines that carry the field; `None` when no line does (older servers), so
/// that nothing is exported as a false 0.
fn add(total: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *total = Some(total.unwrap_or(0).saturating_add(v));
    }
}

fn merge(total: &mut Option<u64>, o: Option<u64>) {
    add(total, o);
}

/// The extra aggregates of one snapshot, folded to top K + `other`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientDetails {
    /// Whether any line carried `lib-name` (Redis 7.2+, Valkey 7.2+): the library families are
    /// exported only then.
    pub has_lib_fields: bool,
    /// Keyed `lib-name` + ' ' + `lib-ver` (neither may hold a space: CLIENT SETINFO refuses
    /// it), [`UNSET`] for connections that set none; top K by connections + `other`.
    pub by_library: Vec<(String, LibStats)>,
    /// Connections per local (listening) port from `laddr` (`unix` for unix sockets).
    pub by_local_port: Vec<(String, u64)>,
    pub query_buffer_bytes: Option<u64>,
    pub argv_memory_bytes: Option<u64>,
    pub multi_memory_bytes: Option<u64>,
    /// Summed `oll` (reply list blocks) and `obl` (bytes in the static reply buffer).
    pub output_list_blocks: Option<u64>,
    pub output_static_bytes: Option<u64>,
    /// Connections with output pending (`omem`, `oll` or `obl` above 0), and those of them
    /// whose socket does not drain ([`output_stalled`]).
    pub output_pending_connections: u64,
    pub output_stalled_connections: u64,
    /// Summed `watch` (keys WATCHed; Redis 7.4+, Valkey).
    pub watched_keys: Option<u64>,
    /// Connections that never ran a command (`tot-cmds=0`; Redis 8 (8.2 in the matrix, not 7.4), Valkey 8.1+).
    pub never_ran_command: Option<u64>,
    /// Bytes read from and written to the connections open now (`tot-net-in`, `tot-net-out`).
    pub net_input_bytes: Option<u64>,
    pub net_output_bytes: Option<u64>,
}

/// The reusable state behind [`ClientDetails`]; one per `Aggregator`.
#[derive(Default)]
pub(crate) struct Details {
    libs: Counts<LibStats>,
    ports: Counts<u64>,
    /// `lib-name lib-ver`, built here: its capacity is reused, so no allocation once warm.
    key: String,
    scalars: ClientDetails,
}

impl Details {
    pub(crate) fn begin(&mut self) {
        self.libs.reset();
        self.ports.reset();
        self.scalars = ClientDetails::default();
    }

    /// Adds one line. `scratch` and `cut` are the aggregator's: a value too long for a label is
    /// bounded (and counted) before the lookup, like every other dimension.
    pub(crate) fn add(
        &mut self,
        e: &ClientEntry<'_>,
        flags: FlagSet,
        is_idle: bool,
        scratch: &mut String,
        cut: &mut u64,
    ) {
        let s = &mut self.scalars;
        add(&mut s.query_buffer_bytes, e.qbuf);
        add(&mut s.argv_memory_bytes, e.argv_mem);
        add(&mut s.multi_memory_bytes, e.multi_mem);
        add(&mut s.output_list_blocks, e.oll);
        add(&mut s.output_static_bytes, e.obl);
        add(&mut s.watched_keys, e.watch);
        add(&mut s.net_input_bytes, e.tot_net_in);
        add(&mut s.net_output_bytes, e.tot_net_out);
        add(
            &mut s.never_ran_command,
            e.tot_cmds.map(|n| u64::from(n == 0)),
        );
        let pending = e.omem.unwrap_or(0) > 0 || e.oll.unwrap_or(0) > 0 || e.obl.unwrap_or(0) > 0;
        s.output_pending_connections += u64::from(pending);
        s.output_stalled_connections += u64::from(output_stalled(e));

        s.has_lib_fields |= e.lib_name.is_some();
        self.key.clear();
        match e.lib_name {
            Some(name) if !name.is_empty() => {
                // The aggregator's library map has bounded (and counted) this name already.
                self.key.push_str(bounded(name, scratch, &mut 0));
                self.key.push(' ');
                self.key
                    .push_str(bounded(e.lib_ver.unwrap_or(""), scratch, cut));
            }
            _ => self.key.push_str(UNSET),
        }
        let lib = self.libs.entry(&self.key);
        lib.connections += 1;
        lib.idle_connections += u64::from(is_idle);
        lib.memory_bytes = lib.memory_bytes.saturating_add(e.tot_mem.unwrap_or(0));

        if let Some(laddr) = e.laddr {
            *self
                .ports
                .entry(bounded(local_port(laddr, flags), scratch, cut)) += 1;
        }
    }

    /// Adds the counts of a helper that aggregated another part of the reply.
    pub(crate) fn absorb(&mut self, o: &mut Details) {
        self.libs.absorb(&mut o.libs);
        self.ports.absorb(&mut o.ports);
        // Destructured without `..`: a new field must be merged here too.
        let ClientDetails {
            has_lib_fields,
            by_library: _,
            by_local_port: _,
            query_buffer_bytes,
            argv_memory_bytes,
            multi_memory_bytes,
            output_list_blocks,
            output_static_bytes,
            output_pending_connections,
            output_stalled_connections,
            watched_keys,
            never_ran_command,
            net_input_bytes,
            net_output_bytes,
        } = std::mem::take(&mut o.scalars);
        let s = &mut self.scalars;
        s.has_lib_fields |= has_lib_fields;
        merge(&mut s.query_buffer_bytes, query_buffer_bytes);
        merge(&mut s.argv_memory_bytes, argv_memory_bytes);
        merge(&mut s.multi_memory_bytes, multi_memory_bytes);
        merge(&mut s.output_list_blocks, output_list_blocks);
        merge(&mut s.output_static_bytes, output_static_bytes);
        s.output_pending_connections += output_pending_connections;
        s.output_stalled_connections += output_stalled_connections;
        merge(&mut s.watched_keys, watched_keys);
        merge(&mut s.never_ran_command, never_ran_command);
        merge(&mut s.net_input_bytes, net_input_bytes);
        merge(&mut s.net_output_bytes, net_output_bytes);
    }

    /// Ends the snapshot: forgets keys it did not see, folds each dimension to `top_k`.
    pub(crate) fn finish(&mut self, top_k: usize) -> ClientDetails {
        self.libs.prune();
        self.ports.prune();
        let mut out = std::mem::take(&mut self.scalars);
        out.by_library = fold(self.libs.iter(), top_k, |a, b| a.absorb(b));
        out.by_local_port = fold(self.ports.iter(), top_k, |a, b| *a = a.saturating_add(*b));
        out
    }
}

/// The port of a `laddr` (`127.0.0.1:6379`, `[::1]:6379` -> `6379`); `unix` for a unix socket
/// (`/run/redis.sock:0`, or Valkey 9's `[/run/redis.sock:0]:0`).
pub fn local_port(laddr: &str, flags: FlagSet) -> &str {
    if flags.contains(b'U') || laddr.starts_with('/') || laddr.starts_with("[/") {
        return "unix";
    }
    match laddr.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() => port,
        _ => laddr,
    }
}

/// `(library, version)` of a [`ClientDetails::by_library`] key.
pub fn split_library(key: &str) -> (&str, &str) {
    key.split_once(' ').unwrap_or((key, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::aggregate::Aggregator;

    fn line(id: u32, lib: &str, ver: &str, idle: u64, extra: &str) -> String {
        format!(
            "id={id} addr=10.0.0.{id}:1 laddr=10.0.0.1:6379 name= age=9 idle={idle} flags=N qbuf=3 argv-mem=5 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=100 events=r cmd=get lib-name={lib} lib-ver={ver} tot-net-in=7 tot-net-out=11 tot-cmds=1 {extra}\n"
        )
    }

    #[test]
    fn libraries_and_versions_top_k_with_other() {
        let mut reply = String::new();
        for i in 0..5 {
            reply += &line(i, "redis-py", "8.1.0", 100, "");
        }
        for i in 5..8 {
            reply += &line(i, "jedis", "5.2.0", 0, "");
        }
        reply += &line(8, "jedis", "4.0.0", 0, "");
        reply += &line(9, "", "", 0, "");
        let mut a = Aggregator::new(60);
        let d = a.summarize(&reply, 2).details;
        assert!(d.has_lib_fields);
        let got: Vec<(&str, u64, u64, u64)> = d
            .by_library
            .iter()
            .map(|(k, s)| {
                (
                    k.as_str(),
                    s.connections,
                    s.idle_connections,
                    s.memory_bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("redis-py 8.1.0", 5, 5, 500),
                ("jedis 5.2.0", 3, 0, 300),
                ("other", 2, 0, 200)
            ]
        );
        assert_eq!(split_library("redis-py 8.1.0"), ("redis-py", "8.1.0"));
        assert_eq!(split_library(UNSET), (UNSET, ""));
        let d = a.summarize(&reply, 10).details;
        assert!(d
            .by_library
            .iter()
            .any(|(k, s)| k == UNSET && s.connections == 1));
        assert_eq!(d.by_local_port, [("6379".to_string(), 10)]);
        assert_eq!(d.query_buffer_bytes, Some(30));
        assert_eq!(d.argv_memory_bytes, Some(50));
        assert_eq!(d.net_output_bytes, Some(110));
        assert_eq!(d.never_ran_command, Some(0));
        assert_eq!(d.watched_keys, None, "no watch= field: absent, not 0");
    }

    #[test]
    fn stalled_readers_need_pending_output_and_a_write_handler() {
        let reply = [
            line(1, "a", "1", 0, "")
                .replace("oll=0 omem=0", "oll=3 omem=900")
                .replace("events=r", "events=rw"),
            line(2, "a", "1", 0, "").replace("oll=0 omem=0", "oll=3 omem=900"),
            line(3, "a", "1", 0, "").replace("events=r", "events=rw"),
        ]
        .concat();
        let d = Aggregator::new(60).summarize(&reply, 10).details;
        assert_eq!(d.output_pending_connections, 2);
        assert_eq!(d.output_stalled_connections, 1);
    }

    #[test]
    fn no_lib_fields_on_old_servers_and_unix_ports() {
        let reply = "id=1 addr=/tmp/r.sock:0 laddr=/tmp/r.sock:0 flags=U tot-mem=5 cmd=get\n\
                     id=2 addr=[/tmp/r.sock:0]:0 laddr=[/tmp/r.sock:0]:0 flags=U cmd=get\n\
                     id=3 addr=[::1]:5 laddr=[::1]:7000 flags=N cmd=get\n";
        let d = Aggregator::new(60).summarize(reply, 10).details;
        assert!(!d.has_lib_fields);
        let ports: Vec<(&str, u64)> = d
            .by_local_port
            .iter()
            .map(|(k, n)| (k.as_str(), *n))
            .collect();
        assert_eq!(ports, [("unix", 2), ("7000", 1)]);
        assert_eq!(d.query_buffer_bytes, None);
    }

    #[test]
    fn long_library_names_are_bounded() {
        let long = "l".repeat(1000);
        let reply = line(1, &long, &long, 0, "");
        let mut a = Aggregator::new(60);
        let s = a.summarize(&reply, 10);
        let (k, _) = &s.details.by_library[0];
        let (lib, ver) = split_library(k);
        assert!(
            lib.len() <= crate::redis::label::MAX_LABEL_BYTES,
            "{}",
            lib.len()
        );
        assert!(ver.len() <= crate::redis::label::MAX_LABEL_BYTES);
        assert_eq!(s.truncated_values, 2);
    }
}
