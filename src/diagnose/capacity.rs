//! `capacity_at_max_scale` (only with `[identity.kubernetes]`): a workload whose
//! HorizontalPodAutoscaler may scale it to `maxReplicas` pods, each with the connections its
//! pods hold now, would exhaust maxclients there, before it gets there. The arithmetic: its
//! connections per pod now × maxReplicas + every other connection now, against maxclients.
//! Pools are per pod, so connections grow with pods; other clients are assumed to stay.

use super::{advice, ev, pct, Cause, Ctx, Finding};
use crate::analysis::aggregate::{GroupStats, WorkloadMembers};

/// The projection counts from this share of maxclients (a note below the limit).
const NOTE_AT: f64 = 0.9;

pub(super) fn detect(ctx: &Ctx<'_>) -> Option<Finding> {
    let c = ctx.obs.clients;
    let (maxclients, limit) = (ctx.maxclients?, ctx.limit?);
    let mut worst: Option<(f64, &WorkloadMembers, &GroupStats, u32)> = None;
    for m in &c.workloads {
        let Some(max) = m.max_replicas.filter(|&x| u64::from(x) > m.instances) else {
            continue;
        };
        let Some((_, g)) = c.by_workload.iter().find(|(k, _)| *k == m.workload) else {
            continue;
        };
        let per_pod = g.connections as f64 / m.instances.max(1) as f64;
        let projected = limit - g.connections as f64 + per_pod * f64::from(max);
        if worst.is_none_or(|(p, ..)| projected > p) {
            worst = Some((projected, m, g, max));
        }
    }
    let (projected, m, g, max) = worst?;
    let share = projected / maxclients.max(1.0);
    if share < NOTE_AT {
        return None;
    }
    let per_pod = g.connections as f64 / m.instances.max(1) as f64;
    let rest = limit - g.connections as f64;
    let who = &m.workload;
    let title = format!(
        "{who} at its autoscaler's maximum ({max} pods) would need {projected:.0} of {maxclients:.0} connections"
    );
    let mut f = Finding::new(Cause::CapacityAtMaxScale, title, 0.9);
    // Not a threat today: a warning when the maximum would pass the limit, more the further.
    f.severity = if share >= 1.0 {
        0.6 + 0.3 * ((share - 1.0) / 0.5).min(1.0)
    } else {
        0.3
    };
    f.threat = format!(
        "{pct} of maxclients at the autoscaler's maximum",
        pct = pct(share)
    );
    f.culprit = Some(format!("workload {who}"));
    f.summary = format!(
        "{who} has {n} pods holding {conns} connections (~{per_pod:.1} each); its HorizontalPodAutoscaler may scale it to {max}: {per_pod:.1} × {max} = {grown:.0}, plus the {rest:.0} other connections, is {projected:.0}, {pct} of maxclients {maxclients:.0}.",
        n = m.instances,
        conns = g.connections,
        grown = per_pod * f64::from(max),
        pct = pct(share),
    );
    f.evidence = vec![
        ev(format!("{who}: pods now"), m.instances),
        ev("its connections now", g.connections),
        ev("connections per pod", format!("{per_pod:.1}")),
        ev(
            "maxReplicas (kube_horizontalpodautoscaler_spec_max_replicas)",
            max,
        ),
        ev("other connections now", format!("{rest:.0}")),
        ev(
            "projected at maxReplicas",
            format!("{projected:.0} ({})", pct(share)),
        ),
        ev("maxclients", format!("{maxclients:.0}")),
    ];
    let fits = ((maxclients - rest) / f64::from(max)).floor().max(0.0);
    let replicas = ((maxclients - rest) / per_pod.max(1e-9)).floor().max(0.0);
    f.remediation = vec![
        advice(format!(
            "Cap each pod's pool of {who} at {fits:.0} connections (maxclients {maxclients:.0} less the {rest:.0} others, over {max} pods), or"
        )),
        advice(format!(
            "lower its HorizontalPodAutoscaler's maxReplicas to {replicas:.0} (at {per_pod:.1} connections a pod), or"
        )),
        advice(format!(
            "raise maxclients above {:.0} (CONFIG SET maxclients, within the open-files limit), before the autoscaler gets there.",
            (projected * 1.1).ceil()
        )),
    ];
    Some(f)
}
