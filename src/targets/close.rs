//! The one-shot `close` command: what a report's kill step runs, on a new connection. It lists
//! the clients, selects the finding's connections with the same [`Selector::matches`] the
//! diagnosis and relief use (exact: a cut label key, a /24, idle, pub/sub and blocked rules
//! and our own connections included), and closes each by id. Safe to rerun: ids are never
//! reused, so a second run closes only what matches then (nothing, once it is fixed). Loud when
//! it cannot run: a full server refuses the new connection, and that is an error (exit 1),
//! never redis-cli's silent exit 0.

use crate::config::Target;
use crate::diagnose::Selector;
use crate::redis::client_list::Parser;
use crate::redis::connection::{read_client_list, Conn, ErrorKind, PollError, Stage};
use crate::redis::resp::{Arg, Value};

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("FAILED: Redis at {target} is FULL (ERR max number of clients reached): it refused this new connection, so nothing was closed. Free slots first (restart the service holding the most connections, or use the exporter's relief action over its held connection), then run this again.")]
    Full { target: String },
    #[error("FAILED: nothing closed at {target} ({kind} error): {source}", kind = source.kind.as_str())]
    Poll { target: String, source: PollError },
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    /// Connections the selector matched in the CLIENT LIST taken now.
    pub matched: usize,
    /// Connections Redis closed (a matched one may have closed by itself in between).
    pub closed: u64,
}

/// Connects to `target`, closes the connections `selector` matches, and closes the connection.
pub async fn run(target: &Target, selector: &Selector) -> Result<Closed, CloseError> {
    let err = |source: PollError| {
        if source.kind == ErrorKind::Maxclients {
            CloseError::Full {
                target: target.label.clone(),
            }
        } else {
            CloseError::Poll {
                target: target.label.clone(),
                source,
            }
        }
    };
    let mut conn = Conn::open(target).await.map_err(err)?;
    let result = close(&mut conn, selector).await;
    conn.close().await;
    result.map_err(err)
}

async fn close(conn: &mut Conn, selector: &Selector) -> Result<Closed, PollError> {
    let reply = read_client_list(conn).await?.0.into_string();
    let mut ids: Vec<u64> = Vec::new();
    Parser::new().each_entry(&reply, |e| {
        // `matches` leaves out every connection named as ours, this one included.
        if let Some(id) = e.id.filter(|_| selector.matches(e)) {
            ids.push(id);
        }
    });
    let mut closed = 0u64;
    for id in &ids {
        let args = [
            Arg::Str("CLIENT"),
            Arg::Str("KILL"),
            Arg::Str("ID"),
            Arg::Int(*id),
            Arg::Str("SKIPME"),
            Arg::Str("yes"),
        ];
        // The filter form answers how many it closed: 0 when the client left meanwhile.
        if let Value::Integer(n) = conn.call(Stage::ClientId, args).await? {
            closed += u64::try_from(n).unwrap_or(0);
        }
    }
    Ok(Closed {
        matched: ids.len(),
        closed,
    })
}
