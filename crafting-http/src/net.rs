//! Networks and client addresses: the CIDR type behind the global allowlist,
//! the trusted proxies and per-token `ip_cidrs`, and the rule that decides
//! which address a request comes from.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The networks allowed by default: the private IPv4 ranges and loopback.
pub const DEFAULT_LAN_CIDRS: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128"];

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a network could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl std::error::Error for CidrError {}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a network in CIDR notation such as 192.168.1.0/24 or ::1/128",
            self.0
        )
    }
}

impl Cidr {
    /// True when `addr` (IPv4-mapped IPv6 counted as IPv4) lies in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = mask_v4(self.prefix);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = mask_v6(self.prefix);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_owned());
        let text = s.trim();
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                b.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        // `::ffff:10.0.0.0/104` means the IPv4 network 10.0.0.0/8.
        let (network, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Reads a comma- or whitespace-separated list of networks. An empty text is
/// an empty list.
pub fn parse_cidr_list(text: &str) -> Result<Vec<Cidr>, CidrError> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// The default allowlist as networks.
pub fn default_lan_cidrs() -> Vec<Cidr> {
    DEFAULT_LAN_CIDRS.iter().map(|c| c.parse().expect("the defaults are valid")).collect()
}

/// True when any network in `list` holds `addr`.
pub fn any_contains(list: &[Cidr], addr: IpAddr) -> bool {
    list.iter().any(|c| c.contains(addr))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it
/// carries; any other address unchanged.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The address a request is judged by, or `None` when it cannot be told.
///
/// The TCP peer, unless the peer is a trusted proxy and sent
/// `X-Forwarded-For`: then the list is walked from its right end (the entry
/// the trusted peer appended) past further trusted proxies, and the first
/// address that is not one is the client. Entries left of it were written by
/// the client itself and are never read. An entry on that walk that does not
/// parse (an empty one included) makes the client unknown: the request must
/// be refused, never judged as coming from the proxy itself.
pub fn client_addr(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = canonical(peer);
    if !any_contains(trusted, peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else { return Some(peer) };
    let mut client = peer;
    for part in header.rsplit(',') {
        client = canonical(parse_hop(part.trim())?);
        if !any_contains(trusted, client) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly bracketed or with a port.
fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = text.parse::<std::net::SocketAddr>() {
        return Some(sock.ip());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn mask_v4(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
}

fn mask_v6(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) }
}

/// The unspecified IPv4 address, used when a request carries no peer address
/// (only in-process test requests do); it lies in no allowed network.
pub const NO_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &str) -> Vec<Cidr> {
        parse_cidr_list(s).unwrap()
    }

    #[test]
    fn networks_hold_their_addresses() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("::1/128", "::1", true),
            ("::1/128", "127.0.0.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("::/0", "2001:db8::1", true),
            ("::/0", "8.8.8.8", false),
            ("::ffff:10.0.0.0/104", "10.9.9.9", true),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
        ];
        for (net, addr, want) in cases {
            let cidr: Cidr = net.parse().unwrap();
            assert_eq!(cidr.contains(ip(addr)), want, "{net} contains {addr}");
        }
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in ["", "10.0.0.0/33", "::1/129", "10.0.0/8", "10.0.0.0/", "10.0.0.0/+8", "x/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} should not parse");
        }
        assert!(parse_cidr_list("10.0.0.0/8, nope").is_err());
        assert_eq!(parse_cidr_list(" ").unwrap(), vec![]);
        assert_eq!(default_lan_cidrs().len(), 5);
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_peer() {
        let trusted = nets("127.0.0.1/32");
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_addr(ip("192.168.0.5"), Some("10.1.2.3"), &trusted),
            Some(ip("192.168.0.5"))
        );
        // Trusted peer: the right-most entry it appended is the client.
        assert_eq!(client_addr(ip("127.0.0.1"), Some("10.1.2.3"), &trusted), Some(ip("10.1.2.3")));
        // A client cannot smuggle an address in front of the real one.
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("10.9.9.9, 203.0.113.7"), &trusted),
            Some(ip("203.0.113.7"))
        );
        // A chain of trusted proxies is walked past.
        let chain = nets("127.0.0.1/32, 10.0.0.0/8");
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("198.51.100.1, 10.0.0.2"), &chain),
            Some(ip("198.51.100.1"))
        );
        // Garbage on the walk makes the client unknown (the request is refused)...
        for bad in ["not-an-ip", "garbage, 8.8.8.8, junk", "8.8.8.8,", "", "10.0.0.1, ,"] {
            assert_eq!(client_addr(ip("127.0.0.1"), Some(bad), &trusted), None, "{bad:?}");
        }
        // ...but what the client wrote left of the proxy's entry is never read.
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("garbage, 8.8.8.8"), &trusted),
            Some(ip("8.8.8.8"))
        );
        // IPv4-mapped peers are IPv4.
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), Some("[2001:db8::1]"), &trusted),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            client_addr(ip("127.0.0.1"), Some("10.1.2.3:5555"), &trusted),
            Some(ip("10.1.2.3"))
        );
    }
}
