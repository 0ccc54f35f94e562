//! The destination guard of `webhook` steps (docs/security.md): a step's URL may hold request
//! data, so where it may connect is decided here, at connection time, on the resolved
//! addresses.
//!
//! - [`Guard::check`] decides one (host, address, port): refused unless the address is
//!   globally routable or opened by `[server] webhook_allow`; the cloud metadata addresses
//!   ([`METADATA`]) are refused always. IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) and
//!   6to4 (2002::/16) IPv6 addresses are judged by the IPv4 address they carry.
//! - [`literal_ipv4`] reads the numeric host spellings a resolver accepts (`2130706433`,
//!   `0x7f.1`, `0177.0.0.1`), so they are judged as the address they mean; a host that looks
//!   numeric but is no valid address is refused.
//! - [`GuardedConnector`] is the connector of the webhook client: it resolves the host once,
//!   checks **every** address (one bad address refuses the destination), then connects to the
//!   checked addresses themselves (the inner `HttpConnector` gets a literal IP, so there is no
//!   second resolution and DNS rebinding cannot slip in). A refusal is a [`Refused`] error
//!   before any connection attempt.

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// Cloud metadata addresses: refused even when `webhook_allow` covers them (AWS/GCP/Azure/
/// OpenStack link-local, the AWS IPv6 endpoint, Azure's wire server, Alibaba, Oracle).
pub const METADATA: [IpAddr; 5] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
];

/// A destination the guard refuses, with a reason safe to show and log (host and address,
/// never the path or query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The host could not be resolved (the reason is the resolver's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved(pub String);

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unresolved {}

/// A `webhook_allow` entry that is not an address, CIDR range or host name (the entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadAllowEntry(pub String);

impl fmt::Display for BadAllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an address, CIDR range or host name (with an optional :port)",
            self.0
        )
    }
}

impl std::error::Error for BadAllowEntry {}

/// One `webhook_allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// An address range (a single address is a /32 or /128), optionally one port.
    Net(IpNet, Option<u16>),
    /// A host name (lower case, no trailing dot), optionally one port.
    Host(String, Option<u16>),
}

/// The destination policy: the built-in refusals plus the operator's `webhook_allow`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Guard {
    allow: Vec<Rule>,
}

fn port_of(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

/// Lower case without a trailing dot: how host names are compared.
fn normal_host(host: &str) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    IpNet::from_str(s)
        .ok()
        .map(|n| n.trunc())
        .or_else(|| IpAddr::from_str(s).ok().map(IpNet::from))
}

impl Guard {
    /// Builds the policy from `webhook_allow` entries: a CIDR range or an address
    /// (`10.1.2.0/24`, `127.0.0.1`, `::1`), optionally with a port (`127.0.0.1:8080`,
    /// `[::1]:8080`, `10.0.0.0/8:443`), or a host name with an optional port
    /// (`hooks.internal.example`, `hooks.internal.example:8443`). Errors name the bad entry.
    pub fn new<S: AsRef<str>>(allow: &[S]) -> Result<Guard, BadAllowEntry> {
        let mut rules = Vec::new();
        for entry in allow {
            let e = entry.as_ref().trim();
            rules.push(Self::rule(e).ok_or_else(|| BadAllowEntry(e.to_string()))?);
        }
        Ok(Guard { allow: rules })
    }

    fn rule(e: &str) -> Option<Rule> {
        if let Some(net) = parse_net(e) {
            return Some(Rule::Net(net, None));
        }
        if let Ok(sa) = SocketAddr::from_str(e) {
            return Some(Rule::Net(
                IpNet::from(sa.ip()),
                Some(port_of(&sa.port().to_string())?),
            ));
        }
        let Some((left, port)) = e.rsplit_once(':') else {
            return Self::host_rule(e, None);
        };
        let port = port_of(port);
        if let (Some(net), Some(p)) = (parse_net(left), port) {
            // `[v6]` and `[v6/len]` need the brackets when a port follows.
            if net.addr().is_ipv4() || left.starts_with('[') {
                return Some(Rule::Net(net, Some(p)));
            }
        }
        let (host, port) = match port {
            Some(p) => (left, Some(p)),
            None => return None,
        };
        Self::host_rule(host, port)
    }

    fn host_rule(host: &str, port: Option<u16>) -> Option<Rule> {
        let h = normal_host(host);
        (is_host_name(&h) && literal_ipv4(&h).is_none() && !looks_numeric(&h))
            .then_some(Rule::Host(h, port))
    }

    /// Whether `webhook_allow` opens this (host, address, port).
    fn allowed(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        let canon = canonical(ip);
        // An IPv4 address and its IPv4-mapped spelling are one destination.
        let mapped = match canon {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            other => other,
        };
        self.allow.iter().any(|r| match r {
            Rule::Net(net, p) => {
                (net.contains(&ip) || net.contains(&canon) || net.contains(&mapped))
                    && p.is_none_or(|p| p == port)
            }
            Rule::Host(h, p) => *h == host && p.is_none_or(|p| p == port),
        })
    }

    /// Decides one resolved address of `host` (already normalised by [`Guard::destination`]
    /// or given as the URL has it). `Err` holds the reason.
    pub fn check(&self, host: &str, ip: IpAddr, port: u16) -> Result<(), Refused> {
        let host = normal_host(host);
        let canon = canonical(ip);
        if METADATA.contains(&ip) || METADATA.contains(&canon) {
            return Err(Refused(format!(
                "{host} resolves to {ip}, a cloud metadata address"
            )));
        }
        if self.allowed(&host, ip, port) {
            return Ok(());
        }
        match refused_range(ip) {
            None => Ok(()),
            Some(kind) if host == ip.to_string() => Err(Refused(format!(
                "{ip} is {kind} (open it with [server] webhook_allow)"
            ))),
            Some(kind) => Err(Refused(format!(
                "{host} resolves to {ip}, {kind} (open it with [server] webhook_allow)"
            ))),
        }
    }

    /// The checked socket addresses for a URL's `host` and `port`: literal addresses (every
    /// numeric spelling) directly, names through `resolver`; every address must pass.
    pub async fn destination(
        &self,
        host: &str,
        port: u16,
        resolver: &dyn Resolve,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let name = normal_host(host);
        if name.is_empty() {
            return Err(Box::new(Refused("the URL has no host".into())));
        }
        let ips: Vec<IpAddr> = if let Ok(ip) = IpAddr::from_str(&name) {
            vec![ip]
        } else if let Some(v4) = literal_ipv4(&name) {
            vec![IpAddr::V4(v4)]
        } else if looks_numeric(&name) {
            return Err(Box::new(Refused(format!(
                "{name} looks like a numeric address but is not a valid one"
            ))));
        } else if !is_host_name(&name) {
            return Err(Box::new(Refused(format!(
                "{name} is not a valid host name"
            ))));
        } else {
            let found = resolver
                .resolve(&name, port)
                .await
                .map_err(|e| Unresolved(format!("cannot resolve {name}: {e}")))?;
            if found.is_empty() {
                return Err(Box::new(Unresolved(format!(
                    "cannot resolve {name}: no address"
                ))));
            }
            found
        };
        let mut out = Vec::with_capacity(ips.len());
        for ip in ips {
            self.check(&name, ip, port)?;
            let sa = SocketAddr::new(ip, port);
            if !out.contains(&sa) {
                out.push(sa);
            }
        }
        Ok(out)
    }
}

/// An IPv6 address that carries an IPv4 address (mapped `::ffff:a.b.c.d`, compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::/48`) as that IPv4 address;
/// anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    let s = v6.segments();
    let o = v6.octets();
    let v4 = |a: usize| IpAddr::V4(Ipv4Addr::new(o[a], o[a + 1], o[a + 2], o[a + 3]));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && (s[6] != 0 || s[7] > 1) {
        return v4(12); // IPv4-compatible (deprecated); `::` and `::1` stay themselves
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4(12);
    }
    if s[0] == 0x2002 {
        return v4(2);
    }
    ip
}

/// Why `ip` is not a public destination, or `None` when it is globally routable.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([0, 0, 0, 0], 8, "an unspecified address (0.0.0.0/8)"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([10, 0, 0, 0], 8, "a private address (RFC 1918)"),
        ([172, 16, 0, 0], 12, "a private address (RFC 1918)"),
        ([192, 168, 0, 0], 16, "a private address (RFC 1918)"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        (
            [192, 0, 0, 0],
            24,
            "an IETF protocol address (192.0.0.0/24)",
        ),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address (240.0.0.0/4)"),
    ];
    RANGES
        .iter()
        .find(|(net, len, _)| in_v4(ip, *net, *len))
        .map(|(_, _, why)| *why)
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("a link-local address (fe80::/10)");
    }
    if s[0] & 0xffc0 == 0xfec0 {
        return Some("a site-local address (fec0::/10)");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("a unique local address (fc00::/7)");
    }
    if s[0] & 0xff00 == 0xff00 {
        return Some("a multicast address");
    }
    if s[..4] == [0x100, 0, 0, 0] {
        return Some("a discard-only address (100::/64)");
    }
    if s[0] == 0x2001 && s[1] == 0xdb8 {
        return Some("a documentation address (2001:db8::/32)");
    }
    if s[0] == 0x2001 && s[1] < 0x200 {
        // IETF protocol assignments (2001::/23), Teredo 2001::/32 included: the IPv4 address
        // behind a Teredo address cannot be checked.
        return Some("an IETF protocol address (2001::/23)");
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return Some("a NAT64 address (64:ff9b::/48)");
    }
    if s[..5] == [0, 0, 0, 0, 0] {
        return Some("a reserved address (::/80)");
    }
    None
}

/// Whether every dot-separated label of `host` is numeric (`123`, `0x7f`, `0177`): such a host
/// is an address spelling, never a name to resolve.
fn looks_numeric(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or("");
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || ((last.starts_with("0x") || last.starts_with("0X"))
                && last[2..].bytes().all(|b| b.is_ascii_hexdigit())))
}

/// The IPv4 address of a numeric host in any spelling `inet_aton` accepts: one to four parts,
/// each decimal, octal (leading `0`) or hex (`0x`), the last part filling the remaining bytes
/// (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` are all 127.0.0.1).
pub fn literal_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let n = if digits.is_empty() {
            0 // `0x` alone is 0, as inet_aton reads it
        } else if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u64::from_str_radix(digits, radix).ok()?
        } else {
            return None;
        };
        if n > u64::from(u32::MAX) {
            return None;
        }
        nums.push(n as u32);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if rest_bits < 32 && *last >= 1u32 << rest_bits {
        return None;
    }
    let mut v: u32 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(v | last))
}

/// Host name resolution, injectable for tests.
pub trait Resolve: Send + Sync {
    /// The addresses of `host` (`port` for resolvers that need it).
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The system resolver (`getaddrinfo` through tokio).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host, port))
                .await?
                .map(|sa| sa.ip())
                .collect())
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector of the webhook client (see the module docs).
#[derive(Clone)]
pub struct GuardedConnector {
    inner: HttpConnector,
    guard: Arc<Guard>,
    resolver: Arc<dyn Resolve>,
}

impl GuardedConnector {
    /// A connector that resolves with `resolver` and connects only where `guard` allows.
    pub fn new(guard: Arc<Guard>, resolver: Arc<dyn Resolve>) -> GuardedConnector {
        let mut inner = HttpConnector::new();
        inner.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
        inner.set_nodelay(true);
        inner.enforce_http(false);
        GuardedConnector {
            inner,
            guard,
            resolver,
        }
    }

    /// Resolves and checks `dst`, then connects to the first checked address that answers.
    pub async fn connect(&self, dst: Uri) -> Result<TokioIo<TcpStream>, BoxError> {
        let port = match (dst.port_u16(), dst.scheme_str()) {
            (Some(p), _) => p,
            (None, Some("https")) => 443,
            (None, Some("http")) => 80,
            _ => return Err(Box::new(Refused("only http and https".into()))),
        };
        let host = dst.host().unwrap_or("");
        let addrs = self
            .guard
            .destination(host, port, self.resolver.as_ref())
            .await?;
        let mut last: Option<BoxError> = None;
        for sa in addrs {
            // A literal address: the inner connector connects to exactly this one.
            let uri = Uri::builder()
                .scheme("http")
                .authority(sa.to_string())
                .path_and_query("/")
                .build()?;
            let mut inner = self.inner.clone();
            match tower_service::Service::call(&mut inner, uri).await {
                Ok(io) => return Ok(io),
                Err(e) => last = Some(Box::new(e)),
            }
        }
        Err(last.unwrap_or_else(|| "no address to connect to".into()))
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(dst).await })
    }
}

#[cfg(test)]
mod tests {
    //! Decisions on injected addresses (no connection is ever attempted to them); the only
    //! sockets opened are on 127.0.0.1.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(g: &Guard, host: &str, addr: &str, port: u16) -> String {
        match g.check(host, ip(addr), port) {
            Err(r) => r.to_string(),
            Ok(()) => panic!("{host} {addr}:{port} was allowed"),
        }
    }

    #[test]
    fn every_listed_range_is_refused_by_default() {
        let g = Guard::default();
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("::1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("10.0.0.1", "RFC 1918"),
            ("10.255.255.255", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.255", "CGNAT"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fc00::1", "unique local"),
            ("fdff::1", "unique local"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.255", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("240.0.0.1", "reserved"),
            ("254.1.2.3", "reserved"),
            ("192.0.2.1", "documentation"),
            ("2001:db8::1", "documentation"),
            // IPv4-mapped, NAT64 and 6to4 carrying a refused IPv4 address
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.1.2.3", "RFC 1918"),
            ("::ffff:169.254.1.1", "link-local"),
            ("64:ff9b::10.0.0.1", "RFC 1918"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "RFC 1918"),
            ("2002:a9fe:0101::", "link-local"),
            ("::10.0.0.1", "RFC 1918"),
        ];
        for (addr, why) in cases {
            let msg = refused(&g, addr, addr, 80);
            assert!(msg.contains(why), "{addr}: {msg}");
            assert!(msg.starts_with("destination refused: "), "{msg}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let g = Guard::default();
        for addr in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(g.check("example.com", ip(addr), 443), Ok(()), "{addr}");
        }
    }

    #[test]
    fn metadata_addresses_are_refused_even_when_allowed() {
        let g = Guard::new(&[
            "169.254.0.0/16",
            "fd00::/8",
            "168.63.129.16",
            "100.64.0.0/10",
            "192.0.0.0/24",
            "metadata.internal",
        ])
        .unwrap();
        for addr in [
            "169.254.169.254",
            "fd00:ec2::254",
            "168.63.129.16",
            "100.100.100.200",
            "192.0.0.192",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::",
        ] {
            let msg = refused(&g, "metadata.internal", addr, 80);
            assert!(msg.contains("metadata"), "{addr}: {msg}");
        }
        // The rest of the allowed range is open.
        assert_eq!(g.check("x", ip("169.254.1.1"), 80), Ok(()));
        assert_eq!(g.check("x", ip("fd00::1"), 80), Ok(()));
    }

    #[test]
    fn allow_rules_open_exactly_what_they_name() {
        let g = Guard::new(&[
            "10.1.2.0/24",
            "127.0.0.1:8080",
            "hooks.internal.example",
            "Other.Example.:9000",
            "[::1]:8443",
            "192.168.0.0/16:443",
        ])
        .unwrap();
        assert_eq!(g.check("10.1.2.3", ip("10.1.2.3"), 1), Ok(()));
        assert_eq!(g.check("a.example", ip("10.1.2.255"), 443), Ok(()));
        refused(&g, "10.1.3.1", "10.1.3.1", 80);
        assert_eq!(g.check("127.0.0.1", ip("127.0.0.1"), 8080), Ok(()));
        assert_eq!(g.check("x", ip("::ffff:127.0.0.1"), 8080), Ok(()));
        refused(&g, "127.0.0.1", "127.0.0.1", 8081);
        refused(&g, "127.0.0.2", "127.0.0.2", 8080);
        assert_eq!(
            g.check("hooks.internal.example", ip("10.9.9.9"), 80),
            Ok(())
        );
        assert_eq!(g.check("HOOKS.internal.example.", ip("fd12::1"), 1), Ok(()));
        refused(&g, "evil.internal.example", "10.9.9.9", 80);
        assert_eq!(g.check("other.example", ip("10.0.0.1"), 9000), Ok(()));
        refused(&g, "other.example", "10.0.0.1", 9001);
        assert_eq!(g.check("[::1]", ip("::1"), 8443), Ok(()));
        refused(&g, "::1", "::1", 80);
        assert_eq!(g.check("a", ip("192.168.5.5"), 443), Ok(()));
        refused(&g, "a", "192.168.5.5", 80);
    }

    #[test]
    fn bad_allow_entries_are_errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "host:0",
            "host:99999",
            "a b",
            "1.2.3.4.5",
            "::1:8080:x",
            "http://x",
        ] {
            assert!(Guard::new(&[bad]).is_err(), "{bad:?}");
        }
        assert!(Guard::new(&["::1", "fd00::/8", "[fd00::/8]:443", "localhost"]).is_ok());
    }

    #[test]
    fn numeric_host_spellings_are_normalised() {
        for (s, want) in [
            ("2130706433", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0x7F000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("127.0.1", "127.0.0.1"),
            ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("2852039166", "169.254.169.254"),
            ("10.0x10.1", "10.16.0.1"),
            ("0", "0.0.0.0"),
            ("8.8.8.8", "8.8.8.8"),
        ] {
            assert_eq!(literal_ipv4(s), Some(s_ip(want)), "{s}");
        }
        for s in [
            "256.1.1.1",
            "1.2.3.4.5",
            "4294967296",
            "0x1.0x2.0x3.0x100",
            "08",
            "1..2",
            "a.1",
        ] {
            assert_eq!(literal_ipv4(s), None, "{s}");
        }
    }

    fn s_ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Answers from a fixed table and counts look-ups.
    struct Table {
        answers: Mutex<Vec<Vec<IpAddr>>>,
        calls: AtomicUsize,
    }

    impl Table {
        fn new(answers: Vec<Vec<&str>>) -> Table {
            Table {
                answers: Mutex::new(
                    answers
                        .into_iter()
                        .map(|a| a.into_iter().map(ip).collect())
                        .collect(),
                ),
                calls: AtomicUsize::new(0),
            }
        }
    }

    impl Resolve for Table {
        fn resolve<'a>(
            &'a self,
            host: &'a str,
            _port: u16,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let a = self.answers.lock().unwrap();
            let r = if host == "nx.example" {
                Err(std::io::Error::other("no such host"))
            } else {
                Ok(a.get(n).or(a.last()).cloned().unwrap_or_default())
            };
            Box::pin(async move { r })
        }
    }

    async fn decide(g: &Guard, host: &str, table: &Table) -> Result<Vec<SocketAddr>, String> {
        g.destination(host, 80, table)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn every_resolved_address_must_pass() {
        let g = Guard::default();
        let t = Table::new(vec![vec!["93.184.215.14", "10.0.0.7"]]);
        let e = decide(&g, "mixed.example", &t).await.unwrap_err();
        assert!(e.contains("mixed.example resolves to 10.0.0.7"), "{e}");
        let t = Table::new(vec![vec!["2606:4700::1", "::ffff:192.168.1.1"]]);
        assert!(decide(&g, "mixed.example", &t).await.is_err());
        let t = Table::new(vec![vec!["93.184.215.14", "2606:4700::1"]]);
        assert_eq!(decide(&g, "ok.example", &t).await.unwrap().len(), 2);
        // Numeric spellings never reach the resolver.
        let t = Table::new(vec![vec!["93.184.215.14"]]);
        for host in [
            "0x7f.1",
            "2130706433",
            "0177.0.0.1",
            "[::ffff:7f00:1]",
            "127.0.0.1.",
        ] {
            let e = decide(&g, host, &t).await.unwrap_err();
            assert!(e.contains("loopback"), "{host}: {e}");
        }
        let e = decide(&g, "1.2.3.999", &t).await.unwrap_err();
        assert!(e.contains("numeric"), "{e}");
        assert_eq!(t.calls.load(Ordering::SeqCst), 0);
        // A resolver failure is reported, not refused.
        let e = decide(&g, "nx.example", &t).await.unwrap_err();
        assert_eq!(e, "cannot resolve nx.example: no such host");
        let t = Table::new(vec![vec![]]);
        let e = decide(&g, "empty.example", &t).await.unwrap_err();
        assert_eq!(e, "cannot resolve empty.example: no address");
    }

    /// The connector resolves once and connects to the checked address: a name whose second
    /// answer would be a private address (DNS rebinding) is connected to the first one.
    #[tokio::test]
    async fn the_connector_connects_to_the_checked_address_only() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::spawn(async move { listener.accept().await.map(|(_, a)| a.ip()) });
        let guard = Arc::new(Guard::new(&["127.0.0.1"]).unwrap());
        // First answer 127.0.0.1 (allowed); any later look-up would say 10.0.0.1.
        let table = Arc::new(Table::new(vec![vec!["127.0.0.1"], vec!["10.0.0.1"]]));
        let c = GuardedConnector::new(guard, table.clone());
        let uri: Uri = format!("http://rebind.example:{port}/x").parse().unwrap();
        c.connect(uri).await.expect("connected");
        assert_eq!(accepted.await.unwrap().unwrap(), ip("127.0.0.1"));
        assert_eq!(table.calls.load(Ordering::SeqCst), 1);
        // The next connection sees the rebinding answer and is refused before connecting.
        let uri: Uri = format!("http://rebind.example:{port}/x").parse().unwrap();
        let e = c.connect(uri).await.unwrap_err().to_string();
        assert!(e.contains("10.0.0.1"), "{e}");
    }
}
