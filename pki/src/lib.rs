//! The consortium's PKI. Each bank has its own key pair; its certificate, issued by the
//! consortium's CA, is its identity. The network file lists every bank's certificate (public)
//! and the CA's; a bank's private key stays in its own data directory, readable by its owner
//! only. Between banks every connection is mutual TLS:
//!
//! * the server requires a client certificate chaining to the CA, and the business server maps
//!   the certificate to the bank the network file lists it for ([`Pins::bank_of`]);
//! * the client accepts only the certificate listed for the bank it meant to call
//!   ([`client_config`] pins it), so a member cannot pose as another's server either.
//!
//! No shared secret is left: what one bank knows never lets it act as another.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

#[cfg(feature = "issue")]
pub mod issue;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("{0}")]
    Pem(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the CA: {0}")]
    Verifier(String),
}

/// The crypto every configuration uses (one provider, chosen here).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, once: reqwest takes it for every client that is
/// not handed a configuration of ours (it brings no provider of its own; see the workspace's
/// `Cargo.toml`).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when another default is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How long a client keeps an idle pooled connection: below actix-web's keep-alive (5 s, every
/// server of ours). With reqwest's default (90 s) a request could be written on a connection the
/// server was closing for idleness at that moment, and fail as a transport error although the
/// server was up — a `503` for a customer, seen once in CI on a data server's first request
/// after a pause.
pub const POOL_IDLE_MS_MAX: u64 = 4_000;

/// An HTTP client builder (see [`install`]). Every reqwest client of the workspace starts here.
pub fn http() -> reqwest::ClientBuilder {
    install();
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_millis(POOL_IDLE_MS_MAX))
}

/// A default HTTP client (see [`install`]).
pub fn http_client() -> reqwest::Client {
    http().build().expect("a default reqwest client builds")
}

/// Certificates in PEM text.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem(format!("a certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Pem("no certificate in the PEM text".into()));
    }
    Ok(certs)
}

/// A bank's (or a server's) identity: its certificate chain and private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::File { path: path.display().to_string(), why: e.to_string() })
}

impl Identity {
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity, Error> {
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::Pem(format!("the private key: {e}")))?;
        Ok(Identity { chain: certs_from_pem(cert_pem)?, key })
    }

    /// Reads the certificate and the private key. A key file that anyone but its owner may read
    /// is refused: a private key others can read is no longer private.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, Error> {
        owner_only(key)?;
        Identity::from_pem(&read(cert)?, &read(key)?)
    }

    /// The leaf certificate, as the network file lists it.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// Refuses a file that its group or others may read or write.
#[cfg(unix)]
pub fn owner_only(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| Error::File { path: path.display().to_string(), why: e.to_string() })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::File {
            path: path.display().to_string(),
            why: format!("mode {mode:o} lets others read a private key; make it 0600"),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn owner_only(_: &Path) -> Result<(), Error> {
    Ok(())
}

/// The CA's certificates as a root store.
pub fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c).map_err(|e| Error::Verifier(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

/// The server side of mutual TLS: only clients with a certificate the CA issued get in.
pub fn server_config(identity: &Identity, ca_pem: &str) -> Result<ServerConfig, Error> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| Error::Verifier(e.to_string()))?;
    Ok(ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?)
}

/// A plain HTTPS server (no client certificate asked): for the customer API and the data
/// server when they are given a certificate.
pub fn https_server_config(identity: &Identity) -> Result<ServerConfig, Error> {
    Ok(ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?)
}

/// [`https_server_config`] of the identity in these files (a server's `--tls-cert`, `--tls-key`).
pub fn https_server_from_files(cert: &Path, key: &Path) -> Result<ServerConfig, Error> {
    https_server_config(&Identity::load(cert, key)?)
}

/// The client side of mutual TLS towards one bank: presents `identity`, and accepts only a
/// server certificate that chains to the CA *and* is `expected` (the one the network file lists
/// for the bank being called).
pub fn client_config(
    identity: &Identity,
    ca_pem: &str,
    expected: Option<CertificateDer<'static>>,
) -> Result<ClientConfig, Error> {
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| Error::Verifier(e.to_string()))?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { inner, expected }))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?)
}

/// A client that trusts servers the CA issued for, without a certificate of its own (operator
/// tools talking to a server that serves HTTPS).
pub fn trusting_client_config(ca_pem: &str) -> Result<ClientConfig, Error> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth())
}

/// The CA's verdict, then the pin: the CA issued certificates to every member, so the CA alone
/// would let any member answer for any other.
#[derive(Debug)]
struct Pinned {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: Option<CertificateDer<'static>>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        match &self.expected {
            Some(e) if e.as_ref() != end_entity.as_ref() => {
                Err(rustls::Error::General("the server is not the bank its address is listed for".into()))
            }
            _ => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Which bank a presented leaf certificate belongs to, by exact match with the certificates the
/// network file lists (the CA already vouched for the chain; the list says whose it is).
#[derive(Debug, Clone, Default)]
pub struct Pins<B> {
    pins: Vec<(B, CertificateDer<'static>)>,
}

impl<B: Copy> Pins<B> {
    pub fn new(pins: Vec<(B, CertificateDer<'static>)>) -> Pins<B> {
        Pins { pins }
    }

    pub fn bank_of(&self, leaf: &[u8]) -> Option<B> {
        self.pins.iter().find(|(_, c)| c.as_ref() == leaf).map(|(b, _)| *b)
    }
}
