//! Who may connect and how they prove it: host-based rules in `pg_hba.conf`'s line format,
//! SCRAM-SHA-256 (RFC 5802 and 7677, as PostgreSQL runs it) against stored verifiers, and
//! the TLS acceptor.
//!
//! Passwords are never stored: a role keeps PostgreSQL's verifier
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, from which a client's proof
//! can be checked but no password recovered, and which PostgreSQL's own `pg_authid`,
//! `pg_dumpall` and psql's `\password` use, so verifiers move between the two systems.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// Iterations of a new verifier (PostgreSQL's `scram_iterations` default).
pub const SCRAM_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// How a client matched by a rule authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No password (the role must still exist and may log in).
    Trust,
    /// Refused.
    Reject,
    /// SCRAM-SHA-256 (`md5` is read as this, as PostgreSQL does for roles whose password
    /// is a SCRAM verifier: every password here is one).
    Scram,
    /// The password in clear text, checked against the verifier (use it over TLS only).
    Password,
}

impl Method {
    fn parse(s: &str) -> Result<Method, String> {
        Ok(match s {
            "trust" => Method::Trust,
            "reject" => Method::Reject,
            "scram-sha-256" | "md5" => Method::Scram,
            "password" => Method::Password,
            _ => return Err(format!("authentication method \"{s}\" is not supported")),
        })
    }
}

/// Which connections a rule is for (pg_hba.conf's first column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnType {
    /// TCP, with or without TLS.
    Host,
    /// TCP with TLS only.
    HostSsl,
    /// TCP without TLS only.
    HostNoSsl,
}

/// A name list of a rule: `all`, or names separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Names {
    All,
    Some(Vec<String>),
}

impl Names {
    fn parse(s: &str) -> Result<Names, String> {
        if s == "all" {
            return Ok(Names::All);
        }
        let names: Vec<String> = s
            .split(',')
            .map(|n| n.trim_matches('"').to_string())
            .collect();
        // pg_hba.conf's special names would be read here as role or database names, and a
        // rule meant to reject would then match nobody.
        for n in &names {
            if n.starts_with('+')
                || n.starts_with('@')
                || ["sameuser", "samerole", "samegroup", "replication"].contains(&n.as_str())
            {
                return Err(format!(
                    "\"{n}\" in an authentication rule is not supported (name roles and databases, or all)"
                ));
            }
        }
        Ok(Names::Some(names))
    }
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::All => true,
            Names::Some(names) => names.iter().any(|n| n == name),
        }
    }
}

/// An address range: `all`, or an address with a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addresses {
    All,
    Net(IpAddr, u8),
}

impl Addresses {
    fn parse(s: &str) -> Result<Addresses, String> {
        if s == "all" {
            return Ok(Addresses::All);
        }
        let bad = || format!("invalid IP address range \"{s}\" (expected all or ADDRESS/BITS)");
        let (ip, bits) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
            None => max,
        };
        // Clients come as IPv4 when they are IPv4-mapped (see `matches`): so do rules.
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = v6.to_ipv4_mapped() {
                if bits < 96 {
                    return Err(bad());
                }
                return Ok(Addresses::Net(IpAddr::V4(v4), bits - 96));
            }
        }
        Ok(Addresses::Net(ip, bits))
    }

    fn matches(&self, addr: IpAddr) -> bool {
        let Addresses::Net(net, bits) = *self else {
            return true;
        };
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        match (net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        }
    }

    /// Whether every address it covers is a loopback address.
    fn loopback_only(&self) -> bool {
        match *self {
            Addresses::All => false,
            Addresses::Net(IpAddr::V4(n), bits) => n.octets()[0] == 127 && bits >= 8,
            Addresses::Net(IpAddr::V6(n), bits) => n.is_loopback() && bits == 128,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xFFu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// One rule: `TYPE DATABASE USER ADDRESS METHOD`, as a line of pg_hba.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    conn: ConnType,
    databases: Names,
    users: Names,
    addresses: Addresses,
    pub method: Method,
    text: String,
}

impl std::str::FromStr for HbaRule {
    type Err = String;

    fn from_str(line: &str) -> Result<HbaRule, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [conn, db, user, addr, method] = fields[..] else {
            return Err(format!(
                "authentication rule \"{line}\" must have five fields: TYPE DATABASE USER ADDRESS METHOD"
            ));
        };
        let conn = match conn {
            "host" => ConnType::Host,
            "hostssl" => ConnType::HostSsl,
            "hostnossl" => ConnType::HostNoSsl,
            _ => {
                return Err(format!(
                    "connection type \"{conn}\" is not supported (host, hostssl, hostnossl)"
                ))
            }
        };
        Ok(HbaRule {
            conn,
            databases: Names::parse(db)?,
            users: Names::parse(user)?,
            addresses: Addresses::parse(addr)?,
            method: Method::parse(method)?,
            text: fields.join(" "),
        })
    }
}

impl fmt::Display for HbaRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The rules, first match wins (as in pg_hba.conf); a connection no rule matches is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hba {
    rules: Vec<HbaRule>,
}

/// The rules a server has unless configured: trust on loopback, a password from anywhere
/// else.
pub const DEFAULT_HBA: [&str; 3] = [
    "host all all 127.0.0.1/32 trust",
    "host all all ::1/128 trust",
    "host all all all scram-sha-256",
];

impl Default for Hba {
    fn default() -> Self {
        Hba::parse(DEFAULT_HBA).expect("the default rules parse")
    }
}

impl Hba {
    /// Parses rules, each a pg_hba.conf line.
    pub fn parse<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Result<Hba, String> {
        let rules = lines
            .into_iter()
            .map(|l| l.as_ref().parse())
            .collect::<Result<Vec<HbaRule>, String>>()?;
        Ok(Hba { rules })
    }

    /// The rule for a connection, if any.
    pub fn rule(&self, tls: bool, database: &str, user: &str, peer: IpAddr) -> Option<&HbaRule> {
        self.rules.iter().find(|r| {
            let conn = match r.conn {
                ConnType::Host => true,
                ConnType::HostSsl => tls,
                ConnType::HostNoSsl => !tls,
            };
            conn && r.databases.matches(database)
                && r.users.matches(user)
                && r.addresses.matches(peer)
        })
    }

    /// A rule that lets a client on another machine in without a password (what a server
    /// listening beyond loopback refuses to start with unless told otherwise).
    pub fn remote_trust(&self) -> Option<&HbaRule> {
        self.rules
            .iter()
            .find(|r| r.method == Method::Trust && !r.addresses.loopback_only())
    }

    pub fn rules(&self) -> &[HbaRule] {
        &self.rules
    }
}

/// Whether a listen address takes connections from other machines.
pub fn listens_beyond_loopback(listen: SocketAddr) -> bool {
    !listen.ip().is_loopback()
}

/// A parsed SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier(..)")
    }
}

impl Verifier {
    /// A new verifier of `password` with a random salt.
    pub fn new(password: &str) -> Verifier {
        let salt: [u8; SALT_LEN] = rand_bytes();
        Verifier::with_salt(password, &salt, SCRAM_ITERATIONS)
    }

    fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Parses PostgreSQL's text form; `None` if `s` is not one (a password in clear).
    pub fn parse(s: &str) -> Option<Verifier> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Verifier {
            iterations: iterations.parse().ok().filter(|i| *i > 0)?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?.try_into().ok()?,
            server_key: B64.decode(server).ok()?.try_into().ok()?,
        })
    }

    /// Whether `password` is the one this verifier was made from.
    pub fn check(&self, password: &str) -> bool {
        let again = Verifier::with_salt(password, &self.salt, self.iterations);
        same(&again.stored_key, &self.stored_key)
    }

    /// A verifier no password matches, for `user` without one (or without a role), so
    /// that the exchange runs to its end and fails as a wrong password does. Its salt is
    /// the same on every attempt for the same name (from a secret of this process, as
    /// PostgreSQL's mock salt), so asking twice does not tell a real role from none.
    fn unmatchable(user: &str) -> Verifier {
        static SECRET: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(rand_bytes);
        let salt = hmac_sha256(SECRET.as_slice(), user.as_bytes());
        Verifier {
            iterations: SCRAM_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key: rand_bytes(),
            server_key: rand_bytes(),
        }
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random source works");
    b
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    // SASLprep; PostgreSQL uses the raw bytes when the password is not valid for it.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_string());
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).expect("at least one"),
        salt,
        prepared.as_bytes(),
        &mut out,
    );
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    tag.as_ref().try_into().expect("32 bytes")
}

/// Equal keys, compared in time independent of where they differ.
fn same(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

/// The server's side of one SCRAM-SHA-256 exchange (no channel binding).
pub struct ScramExchange {
    verifier: Verifier,
    /// client-first-message-bare, server-first-message.
    first: Option<(String, String)>,
    nonce: String,
    /// The client's GS2 header (`n,,` or `y,,`), which its final message must echo.
    gs2_header: String,
}

/// Why an exchange failed: the client's message was malformed (08P01) or its proof wrong
/// (28P01).
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    Protocol(String),
    WrongPassword,
}

impl ScramExchange {
    /// An exchange for `user` against `verifier` (`None`: there is no role or it has no
    /// password; it fails).
    pub fn new(user: &str, verifier: Option<Verifier>) -> ScramExchange {
        ScramExchange {
            verifier: verifier.unwrap_or_else(|| Verifier::unmatchable(user)),
            first: None,
            nonce: String::new(),
            gs2_header: String::new(),
        }
    }

    /// The client-first-message; returns the server-first-message.
    pub fn client_first(&mut self, message: &[u8]) -> Result<String, ScramError> {
        let bad = |why: &str| ScramError::Protocol(format!("malformed SCRAM message ({why})"));
        let text = std::str::from_utf8(message).map_err(|_| bad("not UTF-8"))?;
        // gs2-header: channel-binding flag, authzid, then the bare message.
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().ok_or_else(|| bad("no GS2 header"))?;
        let _authzid = parts.next().ok_or_else(|| bad("no GS2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| bad("no client-first-message-bare"))?;
        if _authzid.starts_with("a=") {
            return Err(ScramError::Protocol(
                "client uses authorization identity, but it is not supported".into(),
            ));
        }
        match flag {
            "n" | "y" => self.gs2_header = format!("{flag},,"),
            _ if flag.starts_with("p=") => {
                return Err(ScramError::Protocol(
                    "channel binding was requested but SCRAM-SHA-256-PLUS was not offered".into(),
                ))
            }
            _ => return Err(bad("unexpected channel-binding flag")),
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no nonce"))?;
        let server_nonce = B64.encode(rand_bytes::<18>());
        self.nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={},s={},i={}",
            self.nonce,
            B64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.first = Some((bare.to_string(), server_first.clone()));
        Ok(server_first)
    }

    /// The client-final-message; returns the server-final-message if the proof holds.
    pub fn client_final(&self, message: &[u8]) -> Result<String, ScramError> {
        let bad = |why: &str| ScramError::Protocol(format!("malformed SCRAM message ({why})"));
        let (bare, server_first) = self.first.as_ref().ok_or_else(|| bad("out of order"))?;
        let text = std::str::from_utf8(message).map_err(|_| bad("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                binding = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        // Without channel binding the client echoes its GS2 header: "n,," or "y,,".
        if binding != Some(B64.encode(&self.gs2_header).as_str()) {
            return Err(bad("unexpected channel binding"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(bad("nonce mismatch"));
        }
        let proof: [u8; KEY_LEN] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| bad("proof"))?;
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; KEY_LEN];
        for i in 0..KEY_LEN {
            client_key[i] = proof[i] ^ signature[i];
        }
        if !same(&sha256(&client_key), &self.verifier.stored_key) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Cert and key files (PEM) for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// The acceptor for `files`: TLS 1.2 and 1.3 with ring's ciphers.
pub fn tls_acceptor(files: &TlsFiles) -> std::io::Result<pgwire::tokio::TlsAcceptor> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, path: &std::path::Path, e: &dyn fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{what} {}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("cannot read the TLS certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(invalid(
            "no certificate in",
            &files.cert,
            &"the file has no CERTIFICATE block",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| invalid("cannot read the TLS key", &files.key, &e))?;
    // ring: the provider pgwire is built with (aws-lc-rs would add a C build with cmake).
    // rustls marks it deprecated for lacking post-quantum key exchange, which PostgreSQL
    // clients (OpenSSL's libpq, rustls, the JDK) do not require.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("the TLS certificate and key do not fit", &files.cert, &e))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (user "user", password "pencil").
    #[test]
    fn rfc7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::with_salt("pencil", &salt, 4096);
        let mut x = ScramExchange::new("user", Some(verifier.clone()));
        let first = x.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert!(first.starts_with("r=rOprNGfwEbeRWgbNEkqO"), "{first}");
        // Replay the RFC's server nonce so its proof applies.
        x.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        x.first = Some((
            "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .into(),
        ));
        let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            x.client_final(fin).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = ScramExchange {
            verifier: Verifier::with_salt("pencil2", &salt, 4096),
            first: x.first.clone(),
            nonce: x.nonce.clone(),
            gs2_header: "n,,".into(),
        };
        assert_eq!(wrong.client_final(fin), Err(ScramError::WrongPassword));
        // A final message echoing another GS2 header than the first one sent.
        let y = b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert!(matches!(x.client_final(y), Err(ScramError::Protocol(_))));
        // No role: the same salt on every attempt for a name, so a retry tells nothing.
        let salt_of = |user: &str| {
            let mut e = ScramExchange::new(user, None);
            let first = e.client_first(b"n,,n=,r=abc").unwrap();
            first
                .split(',')
                .find(|p| p.starts_with("s="))
                .unwrap()
                .to_string()
        };
        assert_eq!(salt_of("ghost"), salt_of("ghost"));
        assert_ne!(salt_of("ghost"), salt_of("other"));
    }

    #[test]
    fn verifier_text_round_trips_and_checks() {
        let v = Verifier::new("secret");
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        let back = Verifier::parse(&text).unwrap();
        assert_eq!(back, v);
        assert!(back.check("secret"));
        assert!(!back.check("Secret"));
        assert_eq!(Verifier::parse("secret"), None);
        assert_eq!(Verifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA=="), None);
    }

    #[test]
    fn rules_match_first_and_know_loopback() {
        let hba = Hba::default();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            hba.rule(false, "d", "u", local).unwrap().method,
            Method::Trust
        );
        assert_eq!(
            hba.rule(false, "d", "u", mapped).unwrap().method,
            Method::Trust
        );
        assert_eq!(
            hba.rule(true, "d", "u", remote).unwrap().method,
            Method::Scram
        );
        assert!(hba.remote_trust().is_none());
        let hba = Hba::parse([
            "hostssl all alice 10.0.0.0/8 password",
            "hostnossl app all 10.1.0.0/16 reject",
            "host all all 0.0.0.0/0 trust",
        ])
        .unwrap();
        assert_eq!(
            hba.rule(true, "d", "alice", remote).unwrap().method,
            Method::Password
        );
        assert_eq!(
            hba.rule(false, "app", "bob", remote).unwrap().method,
            Method::Reject
        );
        assert_eq!(
            hba.rule(false, "other", "bob", remote).unwrap().method,
            Method::Trust
        );
        assert_eq!(hba.rule(false, "d", "u", "::2".parse().unwrap()), None);
        assert!(hba.remote_trust().is_some());
        assert!("host all all 10.0.0.0/33 trust".parse::<HbaRule>().is_err());
        assert!("local all all trust".parse::<HbaRule>().is_err());
        assert!("host all all all ident".parse::<HbaRule>().is_err());
        assert!("host all +admins all reject".parse::<HbaRule>().is_err());
        assert!("host sameuser all all reject".parse::<HbaRule>().is_err());
        let mapped_rule = Hba::parse(["host all all ::ffff:10.0.0.0/104 reject"]).unwrap();
        assert_eq!(
            mapped_rule.rule(false, "d", "u", remote).unwrap().method,
            Method::Reject
        );
    }
}
