//! Files the authority writes: a service user's key file (ZITADEL's format) and the demo's
//! key-encryption key. Both hold secrets, so both are created with mode 0600 and never
//! overwrite an existing file.

use std::{io::Write, path::Path};

use serde::{Deserialize, Serialize};

/// A service user's key file: `{"type":"serviceaccount","keyId":…,"key":"-----BEGIN …","userId":…}`.
/// The bridge keeps only the public half; this file is the only copy of the private key.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "keyId")]
    pub key_id: String,
    pub key: String,
    #[serde(rename = "userId")]
    pub user_id: String,
}

/// Creates `path` with `content`, readable by its owner only. Refuses to replace a file.
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} already exists; not overwriting it", path.display())
        }
        _ => format!("cannot create {}: {e}", path.display()),
    })?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
