//! The refresh task: builds a new [`IdentitySnapshot`] from every configured source and
//! publishes it whole. Kubernetes is read every `interval_seconds`; reverse DNS looks up, every
//! second, the addresses the pollers found unnamed (within its budget and cache). A source that
//! fails is down at once (the exporter keeps polling and names those addresses as addresses);
//! Kubernetes' entries of the last good refresh are kept for three intervals, then dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::identity::{DnsSource, IdentityConfig, KubernetesSource};
use crate::identity::dns::{Budget, Cache};
use crate::identity::kube::{max_replicas, owners, HPA_QUERIES, QUERIES};
use crate::identity::{IdentityHub, IdentitySnapshot, Owner, SourceStatus};

/// How often the task wakes without Kubernetes and DNS (the static map changes with a reload).
const IDLE_INTERVAL: Duration = Duration::from_secs(60);
/// How often reverse DNS looks at the addresses waiting.
const DNS_TICK: Duration = Duration::from_secs(1);
/// One PTR lookup's timeout.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

struct Kube {
    pods: Arc<HashMap<IpAddr, Owner>>,
    max_replicas: Arc<HashMap<String, u32>>,
    next: Instant,
    last_good: Option<Instant>,
    /// The last refresh's outcome: logs say each change once, not each failed refresh.
    up: Option<bool>,
}

struct Dns {
    src: DnsSource,
    cache: Cache,
    budget: Budget,
    names: Arc<HashMap<IpAddr, String>>,
    failed: Option<String>,
}

pub async fn run(hub: Arc<IdentityHub>, cfg: IdentityConfig, stop: CancellationToken) {
    let static_map = Arc::new(cfg.static_map.clone());
    if cfg.static_map_file.is_some() {
        hub.set_status(
            "static_map",
            SourceStatus {
                up: true,
                entries: static_map.len(),
                error: None,
            },
        );
    }
    let mut kube = Kube {
        pods: Arc::default(),
        max_replicas: Arc::default(),
        next: Instant::now(),
        last_good: None,
        up: None,
    };
    let mut dns = cfg.dns.clone().map(|src| Dns {
        budget: Budget::new(src.max_lookups_per_minute),
        src,
        cache: Cache::default(),
        names: Arc::default(),
        failed: None,
    });
    if dns.is_some() {
        hub.set_status(
            "dns",
            SourceStatus {
                up: true,
                ..Default::default()
            },
        );
    }
    loop {
        if let Some(k) = &cfg.kubernetes {
            if Instant::now() >= kube.next {
                refresh_kube(&hub, k, cfg.max_entries, &mut kube).await;
            }
        }
        if let Some(d) = &mut dns {
            refresh_dns(&hub, d, cfg.max_entries).await;
        }
        hub.publish(Some(Arc::new(IdentitySnapshot {
            pods: Arc::clone(&kube.pods),
            static_map: Arc::clone(&static_map),
            dns: dns
                .as_ref()
                .map(|d| Arc::clone(&d.names))
                .unwrap_or_default(),
            max_replicas: Arc::clone(&kube.max_replicas),
        })));
        let mut wait = cfg.kubernetes.as_ref().map_or(IDLE_INTERVAL, |_| {
            kube.next.saturating_duration_since(Instant::now())
        });
        if dns.is_some() {
            wait = wait.min(DNS_TICK);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn refresh_kube(hub: &IdentityHub, k: &KubernetesSource, max: usize, kube: &mut Kube) {
    kube.next = Instant::now() + k.interval;
    match refresh_pods(k, max).await {
        Ok((p, hpa)) => {
            hub.set_status(
                "kubernetes",
                SourceStatus {
                    up: true,
                    entries: p.len(),
                    error: None,
                },
            );
            if kube.up == Some(false) {
                tracing::info!(pods = p.len(), "identity: kube-state-metrics answers again");
            }
            kube.up = Some(true);
            kube.pods = Arc::new(p);
            kube.max_replicas = Arc::new(hpa);
            kube.last_good = Some(Instant::now());
        }
        Err(e) => {
            if kube.last_good.is_none_or(|t| t.elapsed() > 3 * k.interval) {
                kube.pods = Arc::default();
                kube.max_replicas = Arc::default();
            }
            if kube.up != Some(false) {
                tracing::warn!(error = %e, "identity: kube-state-metrics refresh failed; addresses stay addresses until it answers");
            }
            kube.up = Some(false);
            hub.set_status(
                "kubernetes",
                SourceStatus {
                    up: false,
                    entries: kube.pods.len(),
                    error: Some(crate::redis::label::bound(&e).into_owned()),
                },
            );
        }
    }
}

/// Pods by address, and HPA maxima by workload.
type Pods = (HashMap<IpAddr, Owner>, HashMap<String, u32>);

/// One round of the kube-state-metrics queries (pods, then the HPAs: a cluster without them
/// answers with no samples).
async fn refresh_pods(k: &KubernetesSource, max: usize) -> Result<Pods, String> {
    let q = |query: &'static str| async move {
        crate::identity::prometheus::query(k, query)
            .await
            .map_err(|e| format!("{query}: {e}"))
    };
    let (info, rs, start, hpa_max, hpa_info) = tokio::try_join!(
        q(QUERIES[0]),
        q(QUERIES[1]),
        q(QUERIES[2]),
        q(HPA_QUERIES[0]),
        q(HPA_QUERIES[1])
    )?;
    let pods = owners(&info, &rs, &start, max).map_err(|e| e.to_string())?;
    let hpa = max_replicas(&hpa_max, &hpa_info, max).map_err(|e| e.to_string())?;
    Ok((pods, hpa))
}

/// Looks up the waiting addresses not in the cache, while the budget lasts (the rest wait for
/// the next round: the pollers name them again).
async fn refresh_dns(hub: &IdentityHub, d: &mut Dns, max: usize) {
    let now = Instant::now();
    let mut changed = false;
    let mut lookups = 0;
    for ip in hub.take_wanted() {
        if d.cache.fresh(&ip, now) || !d.budget.take(now) {
            continue;
        }
        lookups += 1;
        match crate::identity::dns::lookup(d.src.resolver, ip, DNS_TIMEOUT).await {
            Ok(name) => {
                d.cache.insert(ip, name, Instant::now() + d.src.ttl, max);
                d.failed = None;
                changed = true;
            }
            Err(e) => {
                // Not cached: asked again (within the budget) when a poll names it again.
                if d.failed.is_none() {
                    tracing::warn!(error = %e, resolver = %d.src.resolver, "identity: reverse DNS lookup failed; addresses stay addresses");
                }
                d.failed = Some(e.to_string());
            }
        }
    }
    if changed {
        d.names = Arc::new(d.cache.names());
    }
    if lookups > 0 || changed {
        hub.set_status(
            "dns",
            SourceStatus {
                up: d.failed.is_none(),
                entries: d.names.len(),
                error: d.failed.clone(),
            },
        );
    }
}
