//! The panel's configuration: the TOML file's syntax (`ConfigFile`, unknown keys
//! refused), the command-line overrides, and the validated model the rest of the panel
//! reads (`Config`). Relative paths written in a file are resolved against that file's
//! folder, so a unit file can point at a config anywhere. This module only parses and
//! checks; it must never open keys, sockets or the database.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Where the panel listens unless told otherwise: loopback only, behind the proxy.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);
/// Where the panel keeps its database and the accounts' files unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./var/panel";
/// The `aud` the panel expects in an assertion unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "actas-panel";
/// The `iss` the panel expects in an assertion unless told otherwise.
pub const DEFAULT_ISSUER: &str = "actas";

/// The validated configuration the panel runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The socket address to listen on.
    pub listen: SocketAddr,
    /// Holds `panel.db`, the accounts' files (`files/<username>/`) and upload scratch space.
    pub data_dir: PathBuf,
    /// PEM files (SPKI, `BEGIN PUBLIC KEY`) of the Ed25519 keys whose signatures are
    /// accepted; more than one while a signing key is being rotated.
    pub public_keys: Vec<PathBuf>,
    /// The `aud` an assertion must carry.
    pub audience: String,
    /// The `iss` an assertion must carry.
    pub issuer: String,
}

/// The TOML file as written. Every key is optional; unknown keys are an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    public_keys: Option<Vec<PathBuf>>,
    audience: Option<String>,
    issuer: Option<String>,
}

/// Values given on the command line; each one that is set wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--public-key`, repeatable; when any is given they replace the file's list.
    pub public_keys: Vec<PathBuf>,
    /// `--audience`
    pub audience: Option<String>,
    /// `--issuer`
    pub issuer: Option<String>,
}

/// Why the configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// The config file is not valid TOML for this panel (the message names line, column
    /// and key).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file named on the command line.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// No public key was configured, so no assertion could ever be verified.
    #[error(
        "no public key configured: pass --public-key PATH or set public_keys = [\"PATH\"] in the config file"
    )]
    NoPublicKey,
    /// A text setting is empty.
    #[error("{key} must not be empty")]
    Empty {
        /// The config key.
        key: &'static str,
    },
}

impl Config {
    /// Reads the optional config file, applies the command-line overrides on top and
    /// checks the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None => ConfigFile::default(),
        };
        let public_keys = if overrides.public_keys.is_empty() {
            parsed.public_keys.unwrap_or_default()
        } else {
            overrides.public_keys
        };
        let config = Config {
            listen: overrides.listen.or(parsed.listen).unwrap_or(DEFAULT_LISTEN),
            data_dir: overrides
                .data_dir
                .or(parsed.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            public_keys,
            audience: overrides
                .audience
                .or(parsed.audience)
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            issuer: overrides
                .issuer
                .or(parsed.issuer)
                .unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
        };
        config.check()?;
        Ok(config)
    }

    /// A configuration with the defaults and the given keys, for embedding and tests.
    pub fn with_keys(data_dir: PathBuf, public_keys: Vec<PathBuf>) -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            data_dir,
            public_keys,
            audience: DEFAULT_AUDIENCE.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.public_keys.is_empty() {
            return Err(ConfigError::NoPublicKey);
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::Empty { key: "audience" });
        }
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::Empty { key: "issuer" });
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let mut parsed: ConfigFile = toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    parsed.data_dir = parsed.data_dir.map(|dir| base.join(dir));
    parsed.public_keys = parsed
        .public_keys
        .map(|keys| keys.into_iter().map(|key| base.join(key)).collect());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("panel.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_is_read_and_relative_paths_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"data\"\npublic_keys = [\"k1.pem\", \"/etc/k2.pem\"]\naudience = \"a\"\nissuer = \"i\"\n",
        );
        let config = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(
            config.public_keys,
            vec![dir.path().join("k1.pem"), PathBuf::from("/etc/k2.pem")]
        );
        assert_eq!(
            (config.audience.as_str(), config.issuer.as_str()),
            ("a", "i")
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "public_keys = [\"k1.pem\"]\naudience = \"a\"\n");
        let overrides = Overrides {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            public_keys: vec![PathBuf::from("k9.pem")],
            audience: Some("b".to_owned()),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), overrides).unwrap();
        assert_eq!(config.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(config.public_keys, vec![PathBuf::from("k9.pem")]);
        assert_eq!(config.audience, "b");
        assert_eq!(config.issuer, DEFAULT_ISSUER);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn unknown_keys_are_refused_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "public_keys = [\"k\"]\nlisten_on = \"x\"\n");
        let error = Config::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("panel.toml"), "{error}");
        assert!(error.contains("listen_on"), "{error}");
    }

    #[test]
    fn a_bad_listen_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "public_keys = [\"k\"]\nlisten = \"nowhere\"\n");
        let error = Config::load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = Config::load(
            Some(Path::new("/nonexistent/panel.toml")),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent/panel.toml"), "{error}");
    }

    #[test]
    fn at_least_one_public_key_is_required() {
        assert!(matches!(
            Config::load(None, Overrides::default()),
            Err(ConfigError::NoPublicKey)
        ));
    }
}
