//! Development TLS and signing material: a local CA, a server certificate for
//! localhost/127.0.0.1/::1 signed by it, and the Ed25519 key pair that signs assertions.
//!
//! For development and the demo only: production certificates come from the hoster's CA or
//! ACME. Private keys are written with mode 0600, also over an existing file. Existing files
//! are kept unless asked: a complete set is left as it is, and a partial one is refused
//! rather than completed, since no missing file can be made to match the ones present
//! (the CA's key is not kept, and a new signing or server key would silently replace one
//! that the panel or a browser already trusts). A complete set kept is checked to cover
//! the names asked for, so that `--name` is never silently ignored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The names every development server certificate is for.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What `actas certs dev` did.
pub struct DevSet {
    /// The files.
    pub files: DevFiles,
    /// A complete set was there already and was kept as it was.
    pub kept: bool,
}

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

    fn all(&self) -> [&PathBuf; 5] {
        [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.signing_key,
            &self.signing_pub,
        ]
    }
}

/// The file names of `paths`, for a message.
fn names(paths: &[&PathBuf]) -> String {
    paths
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn write(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // `mode` applies only to a file it creates: an existing key file keeps its permissions,
    // so they are set before the new key goes in.
    if private {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| {
                format!("cannot make {} readable by its owner only", path.display())
            })?;
    }
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Why `name` cannot be a name of the server certificate, if it cannot: it must be an IP
/// address or a DNS name (dot-separated labels of letters, digits and `-`, no label
/// starting or ending with `-`).
fn check_name(name: &str) -> Result<(), String> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if (1..=253).contains(&name.len()) && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "--name `{name}` is neither a DNS name (like panel.example) nor an IP address"
        ))
    }
}

/// Of `names`, those the server certificate in `cert_pem` is not valid for.
fn not_covered<'n>(cert_pem: &[u8], names: &'n [String]) -> anyhow::Result<Vec<&'n str>> {
    let der = CertificateDer::from_pem_slice(cert_pem)
        .map_err(|e| anyhow::anyhow!("no certificate found: {e}"))?;
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| anyhow::anyhow!("cannot read the certificate: {e}"))?;
    Ok(names
        .iter()
        .map(String::as_str)
        .filter(|n| {
            ServerName::try_from(*n)
                .map_or(true, |n| cert.verify_is_valid_for_subject_name(&n).is_err())
        })
        .collect())
}

/// Writes the development material into `dir` (created if missing), for the
/// [`DEFAULT_NAMES`] and `extra_names`. With `force`, replaces existing files; otherwise
/// keeps a complete existing set if its server certificate covers `extra_names`, and
/// refuses a partial set or one that does not cover them.
pub fn dev(dir: &Path, extra_names: &[String], force: bool) -> anyhow::Result<DevSet> {
    for name in extra_names {
        check_name(name).map_err(anyhow::Error::msg)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = DevFiles::in_dir(dir);
    if !force {
        let (present, missing): (Vec<_>, Vec<_>) =
            files.all().into_iter().partition(|p| p.exists());
        if missing.is_empty() {
            let pem = std::fs::read(&files.server_cert)
                .with_context(|| format!("cannot read {}", files.server_cert.display()))?;
            let uncovered = not_covered(&pem, extra_names)
                .with_context(|| format!("{}", files.server_cert.display()))?;
            if !uncovered.is_empty() {
                anyhow::bail!(
                    "{}: the existing server certificate is not for {}: nothing was written. \
                     Make a whole new set with `actas certs dev --out {} --force` and every --name it needs \
                     (the panel then needs the new signing.pub, and browsers the new ca.pem)",
                    files.server_cert.display(),
                    uncovered.join(", "),
                    dir.display()
                );
            }
            return Ok(DevSet { files, kept: true });
        }
        if !present.is_empty() {
            anyhow::bail!(
                "{}: {} missing but {} present: nothing was written, since a new set would replace the keys in use. \
                 Restore the missing files, or make a whole new set with `actas certs dev --out {} --force` \
                 (the panel then needs the new signing.pub, and browsers the new ca.pem)",
                dir.display(),
                names(&missing),
                names(&present),
                dir.display()
            );
        }
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

    let mut names = DEFAULT_NAMES.map(String::from).to_vec();
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
    Ok(DevSet { files, kept: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_material_is_complete_and_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let files = dev(dir.path(), &[], false).unwrap().files;
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

    #[test]
    fn names_must_be_dns_names_or_ip_addresses() {
        for ok in ["panel.example", "localhost", "a-1.b", "10.0.0.1", "fe80::1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "not a host!",
            "-x.example",
            "x-.example",
            "a..b",
            "a_b",
            "é.example",
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(err.contains("neither a DNS name"), "{bad}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(dev(dir.path(), &["not a host!".into()], false).is_err());
        assert!(!DevFiles::in_dir(dir.path()).server_cert.exists());
    }

    #[test]
    fn a_kept_set_must_cover_the_names_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let made = dev(dir.path(), &["panel.example".into()], false).unwrap();
        assert!(!made.kept);
        let cert = std::fs::read(&made.files.server_cert).unwrap();

        for names in [&[][..], &["panel.example".into(), "127.0.0.1".into()]] {
            let again = dev(dir.path(), names, false).unwrap();
            assert!(again.kept, "{names:?}");
        }
        let err = match dev(
            dir.path(),
            &["other.example".into(), "10.0.0.2".into()],
            false,
        ) {
            Ok(_) => panic!("a set without the names asked for was kept"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("not for other.example, 10.0.0.2") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read(&made.files.server_cert).unwrap(), cert);

        let forced = dev(dir.path(), &["other.example".into()], true).unwrap();
        assert!(!forced.kept);
        let cert = std::fs::read(&forced.files.server_cert).unwrap();
        assert!(not_covered(&cert, &["other.example".into()])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_partial_set_is_refused_without_force_and_its_keys_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = dev(dir.path(), &[], false).unwrap().files;
        let signing_key = std::fs::read(&files.signing_key).unwrap();
        let server_key = std::fs::read(&files.server_key).unwrap();
        let server_cert = std::fs::read(&files.server_cert).unwrap();
        std::fs::remove_file(&files.signing_pub).unwrap();

        let err = match dev(dir.path(), &[], false) {
            Ok(_) => panic!("a partial set was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("signing.pub"), "names the missing file: {err}");
        assert!(
            err.contains("signing.key") && err.contains("server.key"),
            "names the files present: {err}"
        );
        assert!(err.contains("--force"), "says what to do: {err}");
        assert_eq!(std::fs::read(&files.signing_key).unwrap(), signing_key);
        assert_eq!(std::fs::read(&files.server_key).unwrap(), server_key);
        assert_eq!(std::fs::read(&files.server_cert).unwrap(), server_cert);
        assert!(!files.signing_pub.exists(), "nothing is written");

        dev(dir.path(), &[], true).unwrap();
        assert!(files.signing_pub.exists());
        assert_ne!(std::fs::read(&files.signing_key).unwrap(), signing_key);
    }

    #[test]
    fn forced_private_keys_are_owner_only_even_over_world_readable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = dev(dir.path(), &[], false).unwrap().files;
        for key in [&files.server_key, &files.signing_key] {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        dev(dir.path(), &[], true).unwrap();
        for key in [&files.server_key, &files.signing_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
    }
}
