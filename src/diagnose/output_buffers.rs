//! `output_buffer_hogs`: clients that read slower than Redis answers (or not at all) leave
//! replies in Redis' memory. A threat to memory more than to connection slots: the severity
//! counts the buffers' size besides the server's utilisation.

use super::{blame, culprit, ev, smoothstep, Cause, Ctx, Finding, Only};

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    const MIB: f64 = 1024.0 * 1024.0;
    let c = ctx.obs.clients;
    let total = c.output_buffer_bytes as f64;
    if total < 8.0 * MIB {
        return None;
    }
    let conf = 0.4 + 0.5 * (total / (128.0 * MIB)).min(1.0);
    let who = culprit(c, |g| g.output_bytes);
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
    f.summary = format!(
        "Clients hold {:.1} MiB of unread replies in Redis' output buffers.",
        total / MIB
    );
    f.evidence = vec![
        ev(
            "output buffers, all clients",
            format!("{:.1} MiB", total / MIB),
        ),
        ev(
            "largest group",
            who.map_or("-".into(), |(k, v, g)| {
                format!(
                    "{k} {v}: {:.1} MiB, largest single {:.1} MiB",
                    g.output_bytes as f64 / MIB,
                    g.max_output_bytes as f64 / MIB
                )
            }),
        ),
    ];
    f.remediation = b.remediation;
    f.selector = b.selector;
    Some(f)
}
