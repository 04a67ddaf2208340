//! The static map (`[identity] static_map_file`): the first line whose network holds the address
//! names it. Parsed and checked with the configuration (src/config/identity.rs), so a reload
//! brings a changed file.

use std::net::IpAddr;

use crate::config::identity::Cidr;

/// The name of the first entry that holds `ip`.
pub fn find(map: &[(Cidr, String)], ip: IpAddr) -> Option<&str> {
    map.iter()
        .find(|(c, _)| c.contains(ip))
        .map(|(_, n)| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins() {
        let map = crate::config::identity::parse_static_map("10.0.0.5 one\n10.0.0.0/24 net\n")
            .expect("map");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(find(&map, ip("10.0.0.5")), Some("one"));
        assert_eq!(find(&map, ip("10.0.0.6")), Some("net"));
        assert_eq!(find(&map, ip("10.0.1.6")), None);
    }
}
