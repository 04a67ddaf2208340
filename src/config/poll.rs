//! The poll policy: how often CLIENT LIST runs as a server grows.

use std::time::Duration;

/// How often CLIENT LIST runs. It runs on Redis' main thread and costs O(clients), so above
/// a number of connected clients its interval grows in proportion, up to `max_interval`; INFO
/// and CONFIG keep the target's poll interval. Read in chunks of ids (src/redis/chunked.rs, Redis
/// 6.2+) it no longer stalls Redis, and only its total CPU limits it: `backoff_clients`; read
/// whole (older servers), one command holds Redis for all clients at once:
/// `full_backoff_clients`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientListSchedule {
    pub backoff_clients: u64,
    pub full_backoff_clients: u64,
    pub max_interval: Duration,
    /// A full CLIENT LIST this often re-synchronises the chunked walk (`None`: never).
    pub resync: Option<Duration>,
}

/// `client_list_backoff_clients`: a chunked walk costs Redis ~1.3 µs of CPU per client, so at
/// 50,000 clients and a 15 s poll ~65 ms per poll, 0.4 % of its main thread.
pub const DEFAULT_BACKOFF_CLIENTS: u64 = 50_000;
/// `client_list_full_backoff_clients`: a full CLIENT LIST of 5,000 clients holds Redis ~10 ms.
pub const DEFAULT_FULL_BACKOFF_CLIENTS: u64 = 5000;
/// `client_list_resync_seconds`: a sweep (src/redis/chunked.rs) at most every 15 minutes bounds how
/// long a client the walk could not see stays uncounted.
pub const DEFAULT_RESYNC_SECONDS: f64 = 900.0;

impl Default for ClientListSchedule {
    fn default() -> Self {
        Self {
            backoff_clients: DEFAULT_BACKOFF_CLIENTS,
            full_backoff_clients: DEFAULT_FULL_BACKOFF_CLIENTS,
            max_interval: Duration::from_secs(60),
            resync: Some(Duration::from_secs_f64(DEFAULT_RESYNC_SECONDS)),
        }
    }
}

impl ClientListSchedule {
    /// The CLIENT LIST interval for a server with `clients` connections, listed in chunks
    /// (`chunked`) or whole.
    pub fn interval(&self, poll_interval: Duration, clients: f64, chunked: bool) -> Duration {
        let threshold = if chunked {
            self.backoff_clients
        } else {
            self.full_backoff_clients
        };
        let threshold = threshold.max(1) as f64;
        // NaN (no INFO value) compares false: treated like a small server.
        if clients.partial_cmp(&threshold) != Some(std::cmp::Ordering::Greater) {
            return poll_interval;
        }
        poll_interval
            .mul_f64(clients / threshold)
            .min(self.max_interval.max(poll_interval))
    }
}
