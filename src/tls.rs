//! TLS for lockstep's own HTTPS requests (the schema registry): the public roots, plus a
//! private CA (`ca_file`) and a client certificate (`cert_file` and `key_file`) when
//! configured. Files are PEM; they are read, and checked, when the configuration loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Where the TLS material is, each file named by its configuration key for errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of CAs trusted besides the public roots, and its key's name.
    pub ca_file: Option<(String, PathBuf)>,
    /// The PEM client certificate chain, and its key's name.
    pub cert_file: Option<(String, PathBuf)>,
    /// The PEM private key of the client certificate, and its key's name.
    pub key_file: Option<(String, PathBuf)>,
}

impl TlsFiles {
    /// The client configuration, or none when no file is configured (the defaults are
    /// then taken). Errors name the configuration key and what is wrong.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, String> {
        if self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none() {
            return Ok(None);
        }
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some((key, path)) = &self.ca_file {
            for cert in certificates(key, path)? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "{key} {}: a certificate is not a usable CA: {e}",
                        path.display()
                    )
                })?;
            }
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some((cert_key, cert)), Some((key_key, key))) => {
                let chain = certificates(cert_key, cert)?;
                let private = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{key_key} {}: no PEM private key: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    format!(
                        "{cert_key} and {key_key}: the certificate and key do not go together: {e}"
                    )
                })?
            }
            (Some((cert_key, _)), None) | (None, Some((cert_key, _))) => {
                return Err(format!(
                "{cert_key} is set alone: a client certificate needs both cert_file and key_file"
            ))
            }
        };
        Ok(Some(Arc::new(config)))
    }
}

/// The PEM certificates in `path` (at least one), for configuration key `key`.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A CA, and a client certificate with its key, made by the `openssl` command.
    fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ]);
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-subj",
            "/CN=lockstep",
        ]);
        (
            dir.join("ca.pem"),
            dir.join("client.pem"),
            dir.join("client.key"),
        )
    }

    fn named(key: &str, path: &Path) -> Option<(String, PathBuf)> {
        Some((key.into(), path.to_owned()))
    }

    #[test]
    fn a_private_ca_and_a_client_certificate_are_read_and_bad_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        assert!(matches!(TlsFiles::default().client_config(), Ok(None)));
        let full = TlsFiles {
            ca_file: named("registry.ca_file", &ca),
            cert_file: named("registry.cert_file", &cert),
            key_file: named("registry.key_file", &key),
        };
        assert!(full.client_config().unwrap().is_some());

        let missing = TlsFiles {
            ca_file: named("registry.ca_file", &dir.path().join("nope.pem")),
            ..TlsFiles::default()
        };
        let err = missing.client_config().unwrap_err();
        assert!(
            err.starts_with("registry.ca_file ") && err.contains("nope.pem"),
            "{err}"
        );

        let not_pem = TlsFiles {
            ca_file: named("registry.ca_file", &key),
            ..TlsFiles::default()
        };
        let err = not_pem.client_config().unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");

        let alone = TlsFiles {
            cert_file: named("registry.cert_file", &cert),
            ..TlsFiles::default()
        };
        let err = alone.client_config().unwrap_err();
        assert!(err.contains("needs both cert_file and key_file"), "{err}");

        let key_is_cert = TlsFiles {
            key_file: named("registry.key_file", &cert),
            ..full
        };
        let err = key_is_cert.client_config().unwrap_err();
        assert!(err.starts_with("registry.key_file "), "{err}");
    }
}
