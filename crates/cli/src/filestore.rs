//! A credential store in files: one JSON file per client registration (keyed by issuer) and
//! per session (keyed by MCP server URL), directory 0700, files 0600, written atomically
//! (temp file, fsync, rename) so a crash leaves the old record or the new one, never half.
//! Refreshes take an advisory lock file per session (`locks/<digest>.lock`), so several
//! processes sharing the directory make one refresh between them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use edge_oauth_core::error::Error;
use edge_oauth_core::pkce::s256_challenge;
use edge_oauth_core::registration::ClientCredentials;
use edge_oauth_core::store::StoreLock;
use edge_oauth_core::{CredentialStore, Result, Session};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct FileStore {
    dir: PathBuf,
}

fn store_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store {
        message: format!("{what}: {e}"),
    }
}

impl FileStore {
    /// Opens the store directory. Directories it creates are 0700; an existing directory
    /// given by the user keeps its mode (it may be their home), the subdirectories do not.
    pub fn open(dir: PathBuf) -> Result<Self> {
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| store_err(&dir.display().to_string(), e))?;
            set_mode(&dir, 0o700)?;
        }
        for sub in ["clients", "sessions", "locks"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| store_err(&d.display().to_string(), e))?;
            set_mode(&d, 0o700)?;
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: &str, key: &str) -> PathBuf {
        // A digest of the key: any issuer or URL becomes a safe, fixed-length file name.
        self.dir
            .join(kind)
            .join(format!("{}.json", s256_challenge(key)))
    }

    fn lock_path(&self, server: &str) -> PathBuf {
        self.dir
            .join("locks")
            .join(format!("{}.lock", s256_challenge(server)))
    }

    fn read<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                store_err(
                    &format!("{} is corrupt", path.display()),
                    e.classify() as u8,
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_err(&path.display().to_string(), e)),
        }
    }

    fn write<T: Serialize>(&self, path: &Path, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| store_err("serialize", e))?;
        // A fresh name per write: a temp file left by a crashed process (whose pid may come
        // back) never blocks a later save.
        let nonce = edge_oauth_core::pkce::random_token(&edge_oauth_core::env::OsRandom, 9)?;
        let tmp = path.with_extension(format!("tmp-{}-{nonce}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut f = open_private(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(parent) = path.parent() {
                // Make the rename itself durable.
                if let Ok(d) = fs::File::open(parent) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| store_err(&path.display().to_string(), e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_err(&path.display().to_string(), e)),
        }
    }

    /// Every session, for `list`.
    pub fn sessions(&self) -> Result<Vec<Session>> {
        let dir = self.dir.join("sessions");
        let mut out = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|e| store_err(&dir.display().to_string(), e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Some(s) = self.read::<Session>(&p)?
            {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.server.cmp(&b.server));
        Ok(out)
    }
}

/// A new file readable and writable by its owner only (0600); fails if it exists.
#[cfg(unix)]
pub(crate) fn open_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
pub(crate) fn open_private(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| store_err(&path.display().to_string(), e))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    Ok(())
}

impl CredentialStore for FileStore {
    async fn load_client(&self, issuer: &str) -> Result<Option<ClientCredentials>> {
        let c: Option<ClientCredentials> = self.read(&self.path("clients", issuer))?;
        Ok(c.filter(|c| c.issuer == issuer))
    }
    async fn save_client(&self, client: &ClientCredentials) -> Result<()> {
        self.write(&self.path("clients", &client.issuer), client)
    }
    async fn delete_client(&self, issuer: &str) -> Result<()> {
        self.remove(&self.path("clients", issuer))
    }
    async fn load_session(&self, server: &str) -> Result<Option<Session>> {
        let s: Option<Session> = self.read(&self.path("sessions", server))?;
        Ok(s.filter(|s| s.server == server))
    }
    async fn save_session(&self, session: &Session) -> Result<()> {
        self.write(&self.path("sessions", &session.server), session)
    }
    async fn delete_session(&self, server: &str) -> Result<()> {
        self.remove(&self.path("sessions", server))
    }
    /// An exclusive advisory lock (flock) on the session's lock file, taken on a blocking
    /// thread; closing the file on release (or when the process dies) frees it.
    async fn lock_session(&self, server: &str) -> Result<StoreLock> {
        let path = self.lock_path(server);
        let file = tokio::task::spawn_blocking(move || {
            let file =
                open_lock_file(&path).map_err(|e| store_err(&path.display().to_string(), e))?;
            file.lock()
                .map_err(|e| store_err(&format!("lock {}", path.display()), e))?;
            Ok::<_, Error>(file)
        })
        .await
        .map_err(|e| store_err("lock", e))??;
        Ok(StoreLock::on_release(move || drop(file)))
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_oauth_core::{AccessToken, TokenSet};

    fn session(server: &str) -> Session {
        Session {
            resource: server.into(),
            server: server.into(),
            issuer: "https://as".into(),
            client_id: "c".into(),
            token_endpoint: "https://as/token".into(),
            revocation_endpoint: None,
            requested_scope: None,
            tokens: TokenSet {
                access_token: AccessToken::new("at-secret"),
                token_type: "Bearer".into(),
                refresh_token: None,
                expires_at: Some(10),
                scope: None,
                received_at: 1,
            },
        }
    }

    #[test]
    fn refresh_lock_excludes_other_processes() {
        let dir = std::env::temp_dir().join(format!("edge-oauth-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = FileStore::open(dir.clone()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let lock = rt.block_on(store.lock_session("https://a/mcp")).unwrap();
        // Another open file description (as another process has) cannot take it...
        let other = open_lock_file(&store.lock_path("https://a/mcp")).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ));
        // ...another session's lock is independent...
        let b = open_lock_file(&store.lock_path("https://b/mcp")).unwrap();
        assert!(b.try_lock().is_ok());
        // ...and it is free once released.
        drop(lock);
        assert!(other.try_lock().is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn round_trip_permissions_and_atomicity() {
        let dir = std::env::temp_dir().join(format!("edge-oauth-fs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = FileStore::open(dir.clone()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            store.save_session(&session("https://a/mcp")).await.unwrap();
            let s = store.load_session("https://a/mcp").await.unwrap().unwrap();
            assert_eq!(s.tokens.access_token.secret(), "at-secret");
            assert!(store.load_session("https://b/mcp").await.unwrap().is_none());
            store.delete_session("https://a/mcp").await.unwrap();
            assert!(store.load_session("https://a/mcp").await.unwrap().is_none());
            store.save_session(&session("https://a/mcp")).await.unwrap();
        });
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
            let f = store.path("sessions", "https://a/mcp");
            assert_eq!(
                fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // No temp files left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.join("sessions"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x != "json"))
            .collect();
        assert!(leftovers.is_empty());
        // A corrupt record is a typed error, not a panic.
        fs::write(store.path("sessions", "https://c/mcp"), b"{not json").unwrap();
        let err = rt
            .block_on(store.load_session("https://c/mcp"))
            .unwrap_err();
        assert_eq!(err.code(), "store_error");
        let _ = fs::remove_dir_all(&dir);
    }
}
