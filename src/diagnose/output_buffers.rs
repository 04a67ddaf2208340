//! `output_buffer_hogs`: clients that read slower than Redis answers (or not at all) leave
//! replies in Redis' memory. A threat to memory more than to connection slots: the severity
//! counts the buffers' size besides the server's utilisation.
//!
//! `omem` is the evidence, except on Valkey 9.0+: there a reply of a bulk string of 16 KiB or
//! more (`min-string-size-avoid-copy-reply`) is queued as a reference to the string (reply copy
//! avoidance, valkey-io/valkey#2078), and `omem` charges only its header until a write reaches
//! it (valkey-io/valkey#2396; #3306 charges the replies a write has looked at). A subscriber
//! that does not read 64 KiB messages shows ~80 kB there, 12 MB on Valkey 8.1 and Redis 8.2
//! (the same messages, the same `tot-net-out`). What every version does show is a connection
//! whose replies wait for a socket that does not drain (`events=rw` with output pending,
//! [`crate::analysis::aggregate::details::output_stalled`]): on Valkey 9+ such stalled readers are the
//! evidence, and the buffers' size only a lower bound.

use super::{blame, culprit, ev, smoothstep, Cause, Ctx, Finding, Only};

/// Whether the server queues large bulk replies by reference, so that `omem` undercounts them.
fn omem_undercounts(ctx: &Ctx<'_>) -> bool {
    ctx.server.valkey && ctx.server.version >= (9, 0, 0)
}

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    const MIB: f64 = 1024.0 * 1024.0;
    let c = ctx.obs.clients;
    let total = c.output_buffer_bytes as f64;
    let stalled = c.details.output_stalled_connections;
    let by_reference = omem_undercounts(ctx);
    // On Valkey 9+ a stalled reader with 64 KiB of omem may hold megabytes of replies.
    let stalled_evidence = by_reference && stalled > 0 && total >= 64.0 * 1024.0;
    if total < 8.0 * MIB && !stalled_evidence {
        return None;
    }
    let conf = if stalled_evidence {
        (0.4 + 0.5 * (total / (128.0 * MIB)).min(1.0)).max(0.5 + 0.1 * (stalled.min(4) as f64))
    } else {
        0.4 + 0.5 * (total / (128.0 * MIB)).min(1.0)
    };
    // Stalled readers first where omem undercounts, then bytes.
    let who = if by_reference {
        culprit(c, |g| {
            g.output_stalled
                .saturating_mul(1 << 40)
                .saturating_add(g.output_bytes)
        })
    } else {
        culprit(c, |g| g.output_bytes)
    };
    let b = blame(
        ctx,
        who,
        Only::OutputBuffer,
        "output-buffer hogs",
        |key| format!("Close the connections of {key} with pending output"),
        "The client reads slower than Redis answers (or not at all): fix the reader, and bound it with client-output-buffer-limit (normal / pubsub classes).",
    );
    let memory = smoothstep(total / MIB, 64.0, 1024.0);
    let mut f = Finding::new(Cause::OutputBufferHogs, b.title, conf);
    if memory > ctx.threat.value {
        f.severity = memory;
        f.threat = format!("{:.0} MiB of unread replies in Redis' memory", total / MIB);
    } else {
        f.severity = ctx.threat.value;
        f.threat = ctx.threat.why.clone();
    }
    f.culprit = b.culprit;
    f.summary = if by_reference {
        format!(
            "Clients hold at least {:.1} MiB of unread replies in the server's output buffers; {stalled} connection(s) do not read what it sends (Valkey 9+ counts replies of 16 KiB or more only by their headers).",
            total / MIB
        )
    } else {
        format!(
            "Clients hold {:.1} MiB of unread replies in Redis' output buffers.",
            total / MIB
        )
    };
    f.evidence = vec![
        ev(
            "output buffers, all clients",
            format!("{:.1} MiB", total / MIB),
        ),
        ev(
            "connections whose socket does not drain (events=rw, output pending)",
            stalled,
        ),
        ev(
            "largest group",
            who.map_or("-".into(), |(k, v, g)| {
                format!(
                    "{k} {v}: {:.1} MiB, largest single {:.1} MiB, {} stalled",
                    g.output_bytes as f64 / MIB,
                    g.max_output_bytes as f64 / MIB,
                    g.output_stalled
                )
            }),
        ),
    ];
    f.remediation = b.remediation;
    f.selector = b.selector;
    Some(f)
}
