//! A local network's CA and certificates, made with rcgen by the launcher: what a real
//! consortium does with its own PKI (as Pix's network does), for development machines.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::Error;

fn rc(e: rcgen::Error) -> Error {
    Error::Pem(format!("issuing a certificate: {e}"))
}

/// A certificate authority: its certificate (public) and its signing key (never written to a
/// server's data; a real consortium keeps it offline).
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its private key, in PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

impl Ca {
    pub fn new(name: &str) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).map_err(rc)?;
        Ok(Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `common_name`, valid for the `hosts` (DNS names or IP addresses) it
    /// serves at, usable both as a server and as a client.
    pub fn issue(&self, common_name: &str, hosts: &[&str]) -> Result<Issued, Error> {
        let key = KeyPair::generate().map_err(rc)?;
        let mut params = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).map_err(rc)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(rc)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// Writes `text` to `path` readable by its owner only (0600), in a folder only its owner may
/// enter (0700).
pub fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    let file = |e: std::io::Error| Error::File { path: path.display().to_string(), why: e.to_string() };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file)?;
        set_mode(dir, 0o700).map_err(file)?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(file)?;
        f.write_all(text.as_bytes()).map_err(file)?;
    }
    #[cfg(not(unix))]
    std::fs::write(path, text).map_err(file)?;
    Ok(())
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_identities_load_and_private_files_are_owner_only() {
        let ca = Ca::new("Test CA").expect("a CA");
        let bank = ca.issue("bank 1", &["127.0.0.1", "localhost"]).expect("a certificate");
        let dir = tempfile::tempdir().expect("a folder");
        let key = dir.path().join("identity").join("key.pem");
        let cert = dir.path().join("identity").join("cert.pem");
        write_private(&key, &bank.key_pem).expect("written");
        std::fs::write(&cert, &bank.cert_pem).expect("written");
        let id = crate::Identity::load(&cert, &key).expect("loads");
        crate::server_config(&id, ca.cert_pem()).expect("a server configuration");
        crate::client_config(&id, ca.cert_pem(), Some(id.leaf().clone())).expect("a client configuration");
        // Readable by others: refused.
        set_mode(&key, 0o644).expect("chmod");
        assert!(crate::Identity::load(&cert, &key).is_err());
    }
}
