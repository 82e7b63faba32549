//! Who the client is: the socket peer, or the address a trusted proxy puts in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The client's address. A peer outside `trusted` is the client, whatever it sends. A trusted
/// peer (a proxy) speaks for the address at the right of `X-Forwarded-For`, and so on leftwards
/// while the addresses named are trusted proxies too; the first untrusted one is the client.
/// Entries left of it were written by the client and prove nothing. An entry that is not an
/// address stops the walk at the last address that was.
pub(super) fn client(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer?.to_canonical();
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse(hop.trim()) else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// `192.0.2.1`, `2001:db8::1`, or either with a port (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// What failures are counted against: an IPv4 address, or an IPv6 address's /64 (one host is
/// usually handed a whole /64, and would otherwise have 2^64 addresses to try from).
pub(super) fn subject(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = forwarded(&["6.6.6.6, 1.2.3.4, 10.1.1.1"]);
        assert_eq!(
            client(Some(ip("10.0.0.5")), &h, &trusted),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            client(Some(ip("8.8.8.8")), &h, &trusted),
            Some(ip("8.8.8.8"))
        );
        assert_eq!(client(Some(ip("10.0.0.5")), &h, &[]), Some(ip("10.0.0.5")));
        let split = forwarded(&["6.6.6.6", "1.2.3.4:999"]);
        assert_eq!(
            client(Some(ip("10.0.0.5")), &split, &trusted),
            Some(ip("1.2.3.4"))
        );
        let junk = forwarded(&["1.2.3.4, junk, 10.2.2.2"]);
        assert_eq!(
            client(Some(ip("10.0.0.5")), &junk, &trusted),
            Some(ip("10.2.2.2"))
        );
        assert_eq!(
            client(Some(ip("::ffff:1.2.3.4")), &h, &trusted),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        assert_eq!(subject(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(subject(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
