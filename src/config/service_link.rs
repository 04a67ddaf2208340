//! Kubernetes service-link variables, told apart from mistyped configuration variables.

use std::net::SocketAddr;

use crate::config::ENV_PREFIX;

/// Whether `name=value` is a variable Kubernetes injects into every pod for a Service in the
/// namespace ("service links", on unless the pod sets `enableServiceLinks: false`). A Service
/// named `redis-clients-exporter` (or `redis-clients-exporter-<anything>`) gives
///
/// ```text
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_HOST=10.96.0.7          cluster IP
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_PORT=9816               first port
/// REDIS_CLIENTS_EXPORTER[_X]_SERVICE_PORT_<NAME>=9816        each named port
/// REDIS_CLIENTS_EXPORTER[_X]_PORT=tcp://10.96.0.7:9816       Docker-link style, first port
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP=tcp://10.96.0.7:9816      each port (TCP/UDP/SCTP)
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_PROTO=tcp
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_PORT=9816
/// REDIS_CLIENTS_EXPORTER[_X]_PORT_9816_TCP_ADDR=10.96.0.7
/// ```
///
/// Both the name and the value must have the shape, so that a mistyped configuration variable
/// is still an error. No configuration key ends in `service_host`, `service_port` or `port`,
/// contains `service_port_` or `port_<digits>_` (a unit test checks every key), so none of them
/// is ever taken for a link.
pub fn is_service_link(name: &str, value: &str) -> bool {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return false;
    };
    // `rest` is `_`, the rest of the Service's name (`_X`, possibly empty), `_`, then the
    // shape: try every `_` as the start of the shape.
    rest.char_indices()
        .filter(|&(_, c)| c == '_')
        .any(|(i, _)| {
            let (service, shape) = (&rest[..i], &rest[i + 1..]);
            service
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && link_shape(shape, value)
        })
}

fn link_shape(shape: &str, value: &str) -> bool {
    let is_ip = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    let is_port = |v: &str| v.parse::<u16>().is_ok_and(|p| p > 0);
    match shape {
        "SERVICE_HOST" => return is_ip(value),
        "SERVICE_PORT" => return is_port(value),
        "PORT" => return link_url(value, None).is_some(),
        _ => {}
    }
    if let Some(name) = shape.strip_prefix("SERVICE_PORT_") {
        // A port name (IANA_SVC_NAME, upper-cased, `-` to `_`): at most 15 characters, at
        // least one letter, no leading, trailing or doubled `-`.
        return is_port(value)
            && !name.is_empty()
            && name.len() <= 15
            && name.bytes().any(|b| b.is_ascii_uppercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && !name.starts_with('_')
            && !name.ends_with('_')
            && !name.contains("__");
    }
    let Some(port_proto) = shape.strip_prefix("PORT_") else {
        return false;
    };
    let Some((port, proto_field)) = port_proto.split_once('_') else {
        return false;
    };
    if !is_port(port) {
        return false;
    }
    let (proto, field) = match proto_field.split_once('_') {
        Some((p, f)) => (p, Some(f)),
        None => (proto_field, None),
    };
    if !matches!(proto, "TCP" | "UDP" | "SCTP") {
        return false;
    }
    match field {
        None => link_url(value, Some((proto, port))).is_some(),
        Some("PROTO") => value.eq_ignore_ascii_case(proto),
        Some("PORT") => value == port,
        Some("ADDR") => is_ip(value),
        Some(_) => false,
    }
}

/// `tcp://10.96.0.7:9816` (`udp`, `sctp`; IPv6 in brackets), of the given protocol and port.
fn link_url(value: &str, expect: Option<(&str, &str)>) -> Option<()> {
    let (proto, addr) = value.split_once("://")?;
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return None;
    }
    let addr: SocketAddr = addr.parse().ok()?;
    match expect {
        Some((p, port)) if !p.eq_ignore_ascii_case(proto) || addr.port().to_string() != port => {
            None
        }
        _ => Some(()),
    }
}
