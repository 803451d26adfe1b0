//! ES256 keys for `private_key_jwt` client assertions and DPoP proofs: the core's
//! [`JwsSigner`] over RustCrypto's `p256` (ECDSA with deterministic nonces, RFC 6979).
//! Keys are read from PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`); the DPoP key of a
//! store is generated once and kept next to it in a 0600 file.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_oauth_core::env::{OsRandom, RandomSource};
use edge_oauth_core::jws::SignatureFuture;
use edge_oauth_core::{JwsAlgorithm, JwsSigner, PublicJwk};
use p256::SecretKey;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

/// A P-256 private key.
pub struct EcKey(SigningKey);

impl EcKey {
    /// Parses a PEM private key: PKCS#8 (`openssl genpkey`, what most tools write) or SEC1.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = SecretKey::from_pkcs8_pem(pem.trim())
            .or_else(|_| SecretKey::from_sec1_pem(pem.trim()))
            .map_err(|_| "not a PEM-encoded P-256 private key (PKCS#8 or SEC1)".to_owned())?;
        Ok(Self(SigningKey::from(&key)))
    }

    /// A new key from the operating system's generator.
    pub fn generate() -> Result<Self, String> {
        loop {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            OsRandom
                .fill_bytes(bytes.as_mut())
                .map_err(|e| e.to_string())?;
            // A scalar of zero or at least the group order (odds 2^-32) is drawn again.
            if let Ok(key) = SecretKey::from_slice(bytes.as_ref()) {
                return Ok(Self(SigningKey::from(&key)));
            }
        }
    }

    /// The private key (tests).
    #[cfg(test)]
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The key of a store: read from `path`, or generated and written there (0600, never
    /// replacing a key another process wrote first).
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match read_private_file(path) {
            Ok(pem) => return Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let key = Self::generate()?;
        let pem = SecretKey::from(&key.0)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut f = crate::filestore::open_private(&tmp)?;
            f.write_all(pem.as_bytes())?;
            f.sync_all()?;
            // A hard link does not replace an existing file: the first writer wins.
            fs::hard_link(&tmp, path)
        })();
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let pem =
                    read_private_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Self::from_pem(&pem)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

// The private key never shows: the public key's thumbprint names it.
impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcKey(P-256, jkt={})", self.public_jwk().thumbprint())
    }
}

impl JwsSigner for EcKey {
    fn algorithm(&self) -> JwsAlgorithm {
        JwsAlgorithm::Es256
    }

    fn public_jwk(&self) -> PublicJwk {
        let point = self.0.verifying_key().to_sec1_point(false);
        let coordinate = |c: Option<&[u8]>| URL_SAFE_NO_PAD.encode(c.unwrap_or_default());
        PublicJwk::Ec {
            crv: "P-256".into(),
            x: coordinate(point.x().map(|a| a.as_slice())),
            y: coordinate(point.y().map(|a| a.as_slice())),
        }
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        // SHA-256 over the input, then ECDSA; `to_bytes` is the JWS form, R || S.
        let signature: Signature = self.0.sign(signing_input);
        Box::pin(std::future::ready(Ok(signature.to_bytes().to_vec())))
    }
}

/// Reads a file holding a secret, refusing one that others can read (as ssh does with keys).
pub fn read_private_file(path: &Path) -> std::io::Result<String> {
    let text = fs::read_to_string(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "readable by others (mode {:o}): chmod 600 it first",
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` output shape.
    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcidJ52MaSG5O6sHW
FgshBEVpSy8b7vSc63hULqFWX8ahRANCAATFGk84cps3Z0rM7dsq4leCdYzsbGYw
vDSxy1mBl5pBtlqBxLFezqed9HVly2ijzWu0Fo3BYdqNM+GLL0BWm3uV
-----END PRIVATE KEY-----";

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn signs_verifiably_in_jws_form() {
        let key = EcKey::from_pem(PKCS8).unwrap();
        let sig = block_on(key.sign(b"header.payload")).unwrap();
        assert_eq!(sig.len(), 64);
        let verifying = VerifyingKey::from(&key.0);
        let sig = Signature::from_slice(&sig).unwrap();
        assert!(verifying.verify(b"header.payload", &sig).is_ok());
        let PublicJwk::Ec { crv, x, y } = key.public_jwk() else {
            panic!("EC key")
        };
        assert_eq!(crv, "P-256");
        assert_eq!((x.len(), y.len()), (43, 43));
        assert!(
            EcKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
    }

    #[test]
    fn the_store_key_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("edge-oauth-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dpop-key.pem");
        let a = EcKey::load_or_create(&path).unwrap();
        let b = EcKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_jwk(), b.public_jwk());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(
                EcKey::load_or_create(&path)
                    .unwrap_err()
                    .contains("chmod 600")
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
