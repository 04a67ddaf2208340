//! The refresh task: builds a new [`IdentitySnapshot`] from every configured source on its
//! interval and publishes it whole. A source that fails keeps nothing stale for long: its
//! entries from the last good refresh are kept for three intervals, then dropped, and its status
//! is down either way (the exporter keeps polling and names those addresses as addresses).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::identity::{IdentityConfig, KubernetesSource};
use crate::identity::kube::{owners, QUERIES};
use crate::identity::{IdentityHub, IdentitySnapshot, SourceStatus};

/// How often the task wakes without Kubernetes (the static map only changes with a reload).
const IDLE_INTERVAL: Duration = Duration::from_secs(60);

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
    let mut pods = Default::default();
    let mut last_good: Option<Instant> = None;
    loop {
        let interval = cfg
            .kubernetes
            .as_ref()
            .map_or(IDLE_INTERVAL, |k| k.interval);
        if let Some(k) = &cfg.kubernetes {
            match refresh_pods(k, cfg.max_entries).await {
                Ok(p) => {
                    hub.set_status(
                        "kubernetes",
                        SourceStatus {
                            up: true,
                            entries: p.len(),
                            error: None,
                        },
                    );
                    pods = p;
                    last_good = Some(Instant::now());
                }
                Err(e) => {
                    if last_good.is_none_or(|t| t.elapsed() > 3 * interval) {
                        pods = Default::default();
                    }
                    tracing::warn!(error = %e, "identity: kube-state-metrics refresh failed; addresses stay addresses");
                    hub.set_status(
                        "kubernetes",
                        SourceStatus {
                            up: false,
                            entries: pods.len(),
                            error: Some(crate::redis::label::bound(&e).into_owned()),
                        },
                    );
                }
            }
        }
        hub.publish(Some(Arc::new(IdentitySnapshot {
            pods: pods.clone(),
            static_map: Arc::clone(&static_map),
            dns: Default::default(),
        })));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round of the three kube-state-metrics queries.
async fn refresh_pods(
    k: &KubernetesSource,
    max_entries: usize,
) -> Result<std::collections::HashMap<std::net::IpAddr, crate::identity::Owner>, String> {
    let q = |query: &'static str| async move {
        crate::identity::prometheus::query(k, query)
            .await
            .map_err(|e| format!("{query}: {e}"))
    };
    let (info, rs, start) = tokio::try_join!(q(QUERIES[0]), q(QUERIES[1]), q(QUERIES[2]))?;
    owners(&info, &rs, &start, max_entries).map_err(|e| e.to_string())
}
