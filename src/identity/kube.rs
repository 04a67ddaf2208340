//! kube-state-metrics series (read through Prometheus' `/api/v1/query`) to pod owners.
//!
//! kube-state-metrics 2.x (docs/metrics/workload/pod-metrics.md, replicaset-metrics.md):
//! `kube_pod_info{namespace, pod, uid, host_ip, pod_ip, node, created_by_kind, created_by_name,
//! priority_class, host_network}`, `kube_replicaset_owner{namespace, replicaset, owner_kind,
//! owner_name, owner_is_controller}` (a ReplicaSet's Deployment) and
//! `kube_pod_start_time{namespace, pod, uid}` (value: unix seconds). A pod of a ReplicaSet is
//! named by its Deployment; of a StatefulSet, DaemonSet or Job by that; a bare pod by itself.
//! Pods on the host network share their node's address and are left out. Where two pods list
//! one address (a finished pod and its successor), the one that started last holds it, from
//! its start: older connections stay an address (src/analysis/aggregate/workload.rs).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::identity::snapshot::Owner;
use crate::redis::label::bound;

/// The three queries, in the order [`owners`] takes their answers.
pub const QUERIES: [&str; 3] = [
    "kube_pod_info",
    "kube_replicaset_owner",
    "kube_pod_start_time",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KubeError {
    #[error("Prometheus answered with status `{0}`")]
    Status(String),
    #[error("not a Prometheus query answer: {0}")]
    Json(String),
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: HashMap<String, String>,
    /// `[time, "value"]`.
    #[serde(default)]
    value: Option<(serde_json::Value, String)>,
}

/// The samples of one instant-query answer.
fn samples(body: &[u8]) -> Result<Vec<Sample>, KubeError> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| KubeError::Json(e.to_string()))?;
    if a.status != "success" {
        return Err(KubeError::Status(bound(&a.status).into_owned()));
    }
    Ok(a.data.map(|d| d.result).unwrap_or_default())
}

fn label<'a>(s: &'a Sample, k: &str) -> &'a str {
    s.metric.get(k).map(String::as_str).unwrap_or("")
}

/// The HorizontalPodAutoscaler queries (kube-state-metrics 2.x,
/// docs/metrics/workload/horizontalpodautoscaler-metrics.md): `maxReplicas` and the target.
pub const HPA_QUERIES: [&str; 2] = [
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_info",
];

/// Workload (`Deployment ns/name`, as [`owners`] names it) → its HPA's `maxReplicas`, from the
/// answers to [`HPA_QUERIES`]; at most `max_entries`.
pub fn max_replicas(
    spec_max: &[u8],
    info: &[u8],
    max_entries: usize,
) -> Result<HashMap<String, u32>, KubeError> {
    let mut max: HashMap<(String, String), u32> = HashMap::new();
    for s in samples(spec_max)? {
        let v = s.value.as_ref().and_then(|(_, v)| v.parse::<f64>().ok());
        if let Some(v) = v.filter(|v| v.is_finite() && *v >= 1.0) {
            let key = (
                label(&s, "namespace").to_string(),
                label(&s, "horizontalpodautoscaler").to_string(),
            );
            max.insert(key, v.min(f64::from(u32::MAX)) as u32);
        }
    }
    let mut out = HashMap::new();
    for s in samples(info)? {
        let (ns, hpa) = (label(&s, "namespace"), label(&s, "horizontalpodautoscaler"));
        let (kind, name) = (
            label(&s, "scaletargetref_kind"),
            label(&s, "scaletargetref_name"),
        );
        if kind.is_empty() || name.is_empty() || out.len() >= max_entries {
            continue;
        }
        if let Some(&m) = max.get(&(ns.to_string(), hpa.to_string())) {
            out.insert(bound(&format!("{kind} {ns}/{name}")).into_owned(), m);
        }
    }
    Ok(out)
}

/// Pod address → owner, from the answers to [`QUERIES`]; at most `max_entries`.
pub fn owners(
    pod_info: &[u8],
    rs_owner: &[u8],
    start_time: &[u8],
    max_entries: usize,
) -> Result<HashMap<IpAddr, Owner>, KubeError> {
    let mut deployments: HashMap<(String, String), String> = HashMap::new();
    for s in samples(rs_owner)? {
        if label(&s, "owner_kind") == "Deployment" {
            deployments.insert(
                (
                    label(&s, "namespace").to_string(),
                    label(&s, "replicaset").to_string(),
                ),
                label(&s, "owner_name").to_string(),
            );
        }
    }
    let mut starts: HashMap<(String, String), u64> = HashMap::new();
    for s in samples(start_time)? {
        let t = s.value.as_ref().and_then(|(_, v)| v.parse::<f64>().ok());
        if let Some(t) = t.filter(|t| t.is_finite() && *t >= 0.0) {
            starts.insert(
                (
                    label(&s, "namespace").to_string(),
                    label(&s, "pod").to_string(),
                ),
                t as u64,
            );
        }
    }
    let mut out: HashMap<IpAddr, Owner> = HashMap::new();
    for s in samples(pod_info)? {
        if label(&s, "host_network") == "true" {
            continue;
        }
        let Ok(ip) = label(&s, "pod_ip").parse::<IpAddr>() else {
            continue;
        };
        let (ns, pod) = (label(&s, "namespace"), label(&s, "pod"));
        let (kind, by) = (label(&s, "created_by_kind"), label(&s, "created_by_name"));
        let workload = match (kind, by) {
            ("ReplicaSet", rs) => match deployments.get(&(ns.to_string(), rs.to_string())) {
                Some(d) => format!("Deployment {ns}/{d}"),
                None => format!("ReplicaSet {ns}/{rs}"),
            },
            ("" | "<none>", _) | (_, "" | "<none>") => format!("Pod {ns}/{pod}"),
            (kind, name) => format!("{kind} {ns}/{name}"),
        };
        let since = starts.get(&(ns.to_string(), pod.to_string())).copied();
        let owner = Owner {
            workload: bound(&workload).into_owned(),
            since_unix: since,
        };
        match out.get(&ip) {
            // The later start holds the address.
            Some(o) if o.since_unix >= since => {}
            Some(_) => {
                out.insert(ip, owner);
            }
            None if out.len() < max_entries => {
                out.insert(ip, owner);
            }
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(samples: &[(&[(&str, &str)], &str)]) -> Vec<u8> {
        let result: Vec<serde_json::Value> = samples
            .iter()
            .map(|(labels, v)| {
                let m: serde_json::Map<String, serde_json::Value> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
                    .collect();
                serde_json::json!({"metric": m, "value": [1.0, v]})
            })
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn names_deployments_and_keeps_the_newest_pod_of_an_address() {
        let info = answer(&[
            (
                &[
                    ("namespace", "billing"),
                    ("pod", "rw-1"),
                    ("pod_ip", "10.0.0.1"),
                    ("created_by_kind", "ReplicaSet"),
                    ("created_by_name", "rw-abc"),
                ],
                "1",
            ),
            (
                &[
                    ("namespace", "billing"),
                    ("pod", "old"),
                    ("pod_ip", "10.0.0.2"),
                    ("created_by_kind", "StatefulSet"),
                    ("created_by_name", "db"),
                ],
                "1",
            ),
            (
                &[
                    ("namespace", "shop"),
                    ("pod", "new"),
                    ("pod_ip", "10.0.0.2"),
                    ("created_by_kind", "<none>"),
                    ("created_by_name", "<none>"),
                ],
                "1",
            ),
            (
                &[
                    ("namespace", "kube-system"),
                    ("pod", "proxy"),
                    ("pod_ip", "10.0.0.3"),
                    ("host_network", "true"),
                    ("created_by_kind", "DaemonSet"),
                    ("created_by_name", "kp"),
                ],
                "1",
            ),
        ]);
        let rs = answer(&[(
            &[
                ("namespace", "billing"),
                ("replicaset", "rw-abc"),
                ("owner_kind", "Deployment"),
                ("owner_name", "report-worker"),
            ],
            "1",
        )]);
        let start = answer(&[
            (&[("namespace", "billing"), ("pod", "old")], "100"),
            (&[("namespace", "shop"), ("pod", "new")], "200"),
        ]);
        let o = owners(&info, &rs, &start, 100).expect("owners");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            o[&ip("10.0.0.1")].workload,
            "Deployment billing/report-worker"
        );
        assert_eq!(o[&ip("10.0.0.2")].workload, "Pod shop/new");
        assert_eq!(o[&ip("10.0.0.2")].since_unix, Some(200));
        assert!(!o.contains_key(&ip("10.0.0.3")));
        assert_eq!(owners(&info, &rs, &start, 1).expect("bounded").len(), 1);
        assert!(owners(b"{\"status\":\"error\"}", &rs, &start, 1).is_err());
        assert!(owners(b"<html>", &rs, &start, 1).is_err());
    }

    #[test]
    fn hpa_maxima_by_their_target() {
        let max = answer(&[
            (
                &[("namespace", "shop"), ("horizontalpodautoscaler", "api")],
                "20",
            ),
            (
                &[("namespace", "shop"), ("horizontalpodautoscaler", "orphan")],
                "5",
            ),
        ]);
        let info = answer(&[
            (
                &[
                    ("namespace", "shop"),
                    ("horizontalpodautoscaler", "api"),
                    ("scaletargetref_kind", "Deployment"),
                    ("scaletargetref_name", "api"),
                ],
                "1",
            ),
            (
                &[
                    ("namespace", "shop"),
                    ("horizontalpodautoscaler", "nomax"),
                    ("scaletargetref_kind", "StatefulSet"),
                    ("scaletargetref_name", "db"),
                ],
                "1",
            ),
        ]);
        let m = max_replicas(&max, &info, 10).expect("hpa");
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("Deployment shop/api"), Some(&20));
    }
}
