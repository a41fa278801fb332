//! Who a request came from: its TCP peer, or, when that peer is a trusted reverse proxy
//! (`server.trusted_proxies`), the client address the proxy forwarded in `X-Forwarded-For`
//! (or `X-Real-IP`). The per-address bounds (login throttles, visitor registrations, admin
//! refusals) count that address; connections from a trusted proxy are not bound per address
//! (they carry many clients), only in total.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

/// An address range: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    base: IpAddr,
    bits: u8,
}

impl Range {
    /// `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse(s: &str) -> Result<Range, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let base: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or a range like 10.0.0.0/8"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Range { base, bits })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                prefix_eq(u32::from(a).into(), u32::from(b).into(), self.bits, 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(u128::from(a), u128::from(b), self.bits, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8, width: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// The trusted proxies of a listener.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<Range>);

impl Proxies {
    /// The ranges of `server.trusted_proxies` (validated with the configuration).
    pub fn parse(list: &[String]) -> Result<Proxies, String> {
        list.iter()
            .map(|s| Range::parse(s))
            .collect::<Result<_, _>>()
            .map(Proxies)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client address of a request whose TCP peer is `peer`: `peer` itself unless it is
    /// a trusted proxy; then the last address of `X-Forwarded-For` that is not a trusted
    /// proxy (each proxy appends the address it received from, so the ones before it are
    /// whatever the client wrote), or `X-Real-IP`, or `peer` when neither names one.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(|a| a.parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        if let Some(client) = forwarded.iter().rev().find(|a| !self.trusts(**a)) {
            return Some(*client);
        }
        if let Some(first) = forwarded.first() {
            // Every hop is a trusted proxy: the first is the one nearest the client.
            return Some(*first);
        }
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .or(Some(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ranges_match_by_prefix() {
        let r = Range::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.1.2.3")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(r.contains(ip("::ffff:10.9.9.9")), "an IPv4-mapped address");
        let one = Range::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Range::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Range::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "nowhere", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let p = Proxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            p.client(Some(ip("203.0.113.9")), &spoofed),
            Some(ip("203.0.113.9"))
        );
        // Through the proxy: the address it appended.
        let via = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(p.client(Some(ip("127.0.0.1")), &via), Some(ip("198.51.100.7")));
        // Two trusted hops: the last untrusted address.
        let two = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.5")]);
        assert_eq!(p.client(Some(ip("127.0.0.1")), &two), Some(ip("198.51.100.7")));
        // X-Real-IP when there is no X-Forwarded-For; the proxy itself when neither.
        let real = headers(&[("x-real-ip", "198.51.100.8")]);
        assert_eq!(p.client(Some(ip("127.0.0.1")), &real), Some(ip("198.51.100.8")));
        assert_eq!(
            p.client(Some(ip("127.0.0.1")), &HeaderMap::new()),
            Some(ip("127.0.0.1"))
        );
        // A malformed header names nobody.
        let junk = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(p.client(Some(ip("127.0.0.1")), &junk), Some(ip("127.0.0.1")));
        // No proxies configured: always the peer.
        assert_eq!(
            Proxies::default().client(Some(ip("127.0.0.1")), &via),
            Some(ip("127.0.0.1"))
        );
    }
}
