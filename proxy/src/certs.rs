//! Development TLS and signing material: a local CA, a server certificate for
//! localhost/127.0.0.1/::1 signed by it, and the Ed25519 key pair that signs assertions.
//!
//! For development and the demo only: production certificates come from the hoster's CA or
//! ACME. Private keys are written with mode 0600. Existing files are kept unless asked.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files `actas certs dev` writes.
pub struct DevFiles {
    /// CA certificate (trust it in a browser or test client).
    pub ca_cert: PathBuf,
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server private key.
    pub server_key: PathBuf,
    /// Assertion signing key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// Its public key (SPKI PEM), for the panel.
    pub signing_pub: PathBuf,
}

impl DevFiles {
    /// The file names inside `dir`.
    pub fn in_dir(dir: &Path) -> DevFiles {
        DevFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            signing_key: dir.join("signing.key"),
            signing_pub: dir.join("signing.pub"),
        }
    }

    fn all_exist(&self) -> bool {
        [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.signing_key,
            &self.signing_pub,
        ]
        .iter()
        .all(|p| p.exists())
    }
}

fn write(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the development material into `dir` (created if missing). With `force`, replaces
/// existing files; otherwise keeps a complete existing set.
pub fn dev(dir: &Path, extra_names: &[String], force: bool) -> anyhow::Result<DevFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = DevFiles::in_dir(dir);
    if files.all_exist() && !force {
        return Ok(files);
    }

    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "actas development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(extra_names.iter().cloned());
    let server_key = KeyPair::generate().context("cannot generate the server key")?;
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let signing_pem = signing
        .to_pkcs8_pem(Default::default())
        .map_err(|e| anyhow::anyhow!("cannot encode the signing key: {e}"))?;
    let public_pem = crate::assertion::Signer25519::new(signing).public_pem();

    write(&files.ca_cert, &ca_cert.pem(), false)?;
    write(
        &files.server_cert,
        &format!("{}{}", server_cert.pem(), ca_cert.pem()),
        false,
    )?;
    write(&files.server_key, &server_key.serialize_pem(), true)?;
    write(&files.signing_key, &signing_pem, true)?;
    write(&files.signing_pub, &public_pem, false)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_material_is_complete_and_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let files = dev(dir.path(), &[], false).unwrap();
        let cert = std::fs::read_to_string(&files.server_cert).unwrap();
        assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 2);
        let key = std::fs::read_to_string(&files.signing_key).unwrap();
        assert!(key.contains("BEGIN PRIVATE KEY"));
        assert!(crate::assertion::Signer25519::load(&files.signing_key).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.server_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        dev(dir.path(), &[], false).unwrap();
        assert_eq!(std::fs::read_to_string(&files.signing_key).unwrap(), key);
        dev(dir.path(), &[], true).unwrap();
        assert_ne!(std::fs::read_to_string(&files.signing_key).unwrap(), key);
    }
}
