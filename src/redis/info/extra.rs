//! INFO fields about clients beyond the maxclients arithmetic (issue 19): pub/sub, WATCH and
//! blocked-key counts, client memory, the disconnections the buffer limits caused, client
//! eviction, and Valkey's pause state. Parsed from the same `key:value` lines as
//! [`Info`](crate::redis::info::Info); a field the server does not report stays `None`.

use crate::redis::label::bound;

/// Which server versions report each field (checked on the captures in
/// tests/fixtures/versions; docs/metrics.md says the same).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InfoExtra {
    /// Clients in pub/sub mode (Redis 7.4+, Valkey 8.1+).
    pub pubsub_clients: Option<f64>,
    /// Clients with keys WATCHed, and the keys (Redis 7.4+, Valkey 8.1+).
    pub watching_clients: Option<f64>,
    pub total_watched_keys: Option<f64>,
    /// Clients in the timeout table: blocked with a timeout (every version of the matrix).
    pub clients_in_timeout_table: Option<f64>,
    /// Keys blocked clients wait on (Redis 7.2+, Valkey).
    pub total_blocking_keys: Option<f64>,
    /// Clients closed by client eviction, `maxmemory-clients` (Redis 7.0+, Valkey).
    pub evicted_clients: Option<f64>,
    /// Clients closed for exceeding the query / output buffer limits (Redis 7.4+, Valkey 8.1+).
    pub client_query_buffer_limit_disconnections: Option<f64>,
    pub client_output_buffer_limit_disconnections: Option<f64>,
    /// Memory of normal clients and of replica links (every version of the matrix).
    pub mem_clients_normal: Option<f64>,
    pub mem_clients_slaves: Option<f64>,
    /// The largest input and output buffers of recent seconds (every version of the matrix).
    pub client_recent_max_input_buffer: Option<f64>,
    pub client_recent_max_output_buffer: Option<f64>,
    /// Why clients are paused (`none`, `client_pause`, `shutdown_in_progress`,
    /// `failover_in_progress`; Valkey 8.1+), bounded: it becomes a label.
    pub paused_reason: Option<String>,
}

impl InfoExtra {
    /// Takes the field if it is one of these; false otherwise.
    pub fn field(&mut self, key: &str, value: &str) -> bool {
        let num = || value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let slot = match key {
            "pubsub_clients" => &mut self.pubsub_clients,
            "watching_clients" => &mut self.watching_clients,
            "total_watched_keys" => &mut self.total_watched_keys,
            "clients_in_timeout_table" => &mut self.clients_in_timeout_table,
            "total_blocking_keys" => &mut self.total_blocking_keys,
            "evicted_clients" => &mut self.evicted_clients,
            "client_query_buffer_limit_disconnections" => {
                &mut self.client_query_buffer_limit_disconnections
            }
            "client_output_buffer_limit_disconnections" => {
                &mut self.client_output_buffer_limit_disconnections
            }
            "mem_clients_normal" => &mut self.mem_clients_normal,
            "mem_clients_slaves" => &mut self.mem_clients_slaves,
            "client_recent_max_input_buffer" => &mut self.client_recent_max_input_buffer,
            "client_recent_max_output_buffer" => &mut self.client_recent_max_output_buffer,
            "paused_reason" => {
                self.paused_reason = Some(bound(value.trim()).into_owned());
                return true;
            }
            _ => return false,
        };
        *slot = num();
        true
    }
}

/// `maxmemory-clients` (CONFIG, Redis 7.0+ and Valkey): the memory all clients together may
/// use before the server evicts clients; 0 = off. Either bytes or a percentage of `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientMemoryLimit {
    Bytes(f64),
    Percent(f64),
}

impl ClientMemoryLimit {
    /// CONFIG GET's answer: `0`, `1073741824`, `10%` (Redis also prints sizes as plain bytes).
    pub fn parse(value: &str) -> Option<ClientMemoryLimit> {
        let v = value.trim();
        let num = |t: &str| t.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0);
        match v.strip_suffix('%') {
            Some(p) => num(p).map(ClientMemoryLimit::Percent),
            None => num(v).map(ClientMemoryLimit::Bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientMemoryLimit;
    use crate::redis::info::Info;

    #[test]
    fn maxmemory_clients_values() {
        assert_eq!(
            ClientMemoryLimit::parse("0"),
            Some(ClientMemoryLimit::Bytes(0.0))
        );
        assert_eq!(
            ClientMemoryLimit::parse("10%"),
            Some(ClientMemoryLimit::Percent(10.0))
        );
        assert_eq!(ClientMemoryLimit::parse("1gb"), None);
        assert_eq!(ClientMemoryLimit::parse("-1"), None);
    }

    #[test]
    fn fields_and_absence() {
        let i = Info::parse(
            "# Clients\r\npubsub_clients:6\r\nwatching_clients:x\r\npaused_reason:none\r\n\
             client_output_buffer_limit_disconnections:2\r\nmem_clients_normal:73022\r\n",
        );
        assert_eq!(i.extra.pubsub_clients, Some(6.0));
        assert_eq!(i.extra.watching_clients, None, "not a number: absent");
        assert_eq!(i.extra.paused_reason.as_deref(), Some("none"));
        assert_eq!(i.extra.client_output_buffer_limit_disconnections, Some(2.0));
        assert_eq!(i.extra.mem_clients_normal, Some(73022.0));
        assert_eq!(i.extra.evicted_clients, None);
    }
}
