//! Docker's `-u USER[:GROUP]`, resolved against a root filesystem's own
//! /etc/passwd and /etc/group, as runc does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::support::error::IoError;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup { name: String },
    #[error("invalid user {spec:?}: {reason}; use NAME, UID, NAME:GROUP or UID:GID")]
    InvalidUser { spec: String, reason: String },
    #[error("malformed line in {}: {line:?}; fix the image's file", path.display())]
    BadDatabase { path: PathBuf, line: String },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Docker's `-u USER[:GROUP]` resolved against the image's /etc/passwd and
/// /etc/group: names or numbers; a number absent from passwd is allowed
/// (with gid 0), an unknown name is not.
// ANCHOR: lookup_user
pub fn lookup_user(root: &Path, spec: &str) -> Result<(u32, u32), UserError> {
    let invalid = |reason: &str| UserError::InvalidUser {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(invalid("the user is empty"));
    }
    if group == Some("") {
        return Err(invalid("the group after ':' is empty"));
    }
    let passwd = read_db(&root.join("etc/passwd"))?;
    let numeric_uid = parse_id(user).map_err(|reason| invalid(&reason))?;
    // As runc does: an entry matches by name, or by uid for a number.
    let entry = passwd.iter().find(|fields| {
        fields.first().is_some_and(|name| *name == user)
            || (numeric_uid.is_some() && fields.get(2).and_then(|u| u.parse().ok()) == numeric_uid)
    });
    let (uid, mut gid) = match (entry, numeric_uid) {
        (Some(fields), _) => {
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| UserError::BadDatabase {
                        path: root.join("etc/passwd"),
                        line: fields.join(":"),
                    })
            };
            (field(2)?, field(3)?)
        }
        (None, Some(uid)) => (uid, 0),
        (None, None) => {
            return Err(UserError::UnknownUser {
                name: user.to_string(),
            })
        }
    };
    if let Some(group) = group {
        let numeric_gid = parse_id(group).map_err(|reason| invalid(&reason))?;
        let groups = read_db(&root.join("etc/group"))?;
        let found = groups.iter().find(|fields| {
            fields.first().is_some_and(|name| *name == group)
                || (numeric_gid.is_some()
                    && fields.get(2).and_then(|g| g.parse().ok()) == numeric_gid)
        });
        gid = match (found, numeric_gid) {
            (Some(fields), _) => fields.get(2).and_then(|g| g.parse().ok()).ok_or_else(|| {
                UserError::BadDatabase {
                    path: root.join("etc/group"),
                    line: fields.join(":"),
                }
            })?,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(UserError::UnknownGroup {
                    name: group.to_string(),
                })
            }
        };
    }
    Ok((uid, gid))
}
// ANCHOR_END: lookup_user

/// A number in 0..2^31 (Docker's range for ids), None for a name.
fn parse_id(text: &str) -> Result<Option<u32>, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(id) if id <= i32::MAX as u32 => Ok(Some(id)),
        _ => Err("uids and gids must be in range 0-2147483647".to_string()),
    }
}

/// The colon-separated lines of /etc/passwd or /etc/group; a missing file
/// is an empty one (numeric ids still work, as in Docker).
fn read_db(path: &Path) -> Result<Vec<Vec<String>>, UserError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(UserError::Io(IoError::new("read", path, source))),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').map(str::to_string).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image root with only /etc/passwd and /etc/group, under /tmp.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str, passwd: Option<&str>, group: Option<&str>) -> FakeRoot {
            let root =
                std::env::temp_dir().join(format!("lab-images-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("etc")).unwrap();
            if let Some(text) = passwd {
                fs::write(root.join("etc/passwd"), text).unwrap();
            }
            if let Some(text) = group {
                fs::write(root.join("etc/group"), text).unwrap();
            }
            FakeRoot(root)
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn users_resolve_like_docker() {
        let root = FakeRoot::new(
            "users",
            Some(
                "root:x:0:0:root:/root:/bin/sh\n\
                 # a comment\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                 app:x:1000:1001::/home/app:/bin/sh\n\
                 1234:x:42:43::/:/bin/sh\n",
            ),
            Some("root:x:0:\ntty:x:5:\nstaff:x:50:app\nnogroup:x:65534:\n"),
        );
        let lookup = |spec: &str| lookup_user(&root.0, spec).map_err(|e| e.to_string());
        assert_eq!(lookup("root"), Ok((0, 0)));
        assert_eq!(lookup("app"), Ok((1000, 1001)));
        assert_eq!(lookup("nobody"), Ok((65534, 65534)));
        // A uid in passwd takes its primary group from there.
        assert_eq!(lookup("1000"), Ok((1000, 1001)));
        // A uid absent from passwd is allowed, with group 0.
        assert_eq!(lookup("4242"), Ok((4242, 0)));
        // A name made of digits matches by name first.
        assert_eq!(lookup("1234"), Ok((42, 43)));
        assert_eq!(lookup("app:staff"), Ok((1000, 50)));
        assert_eq!(lookup("app:tty"), Ok((1000, 5)));
        assert_eq!(lookup("1000:5"), Ok((1000, 5)));
        assert_eq!(lookup("4242:777"), Ok((4242, 777)));
        assert_eq!(lookup("nobody:0"), Ok((65534, 0)));
        assert_eq!(
            lookup("ghost"),
            Err("unable to find user ghost: no matching entries in passwd file".to_string())
        );
        assert_eq!(
            lookup("app:ghosts"),
            Err("unable to find group ghosts: no matching entries in group file".to_string())
        );
        for bad in ["", ":5", "app:", "2147483648", "app:99999999999"] {
            let err = lookup(bad).expect_err(bad);
            assert!(err.starts_with("invalid user"), "{bad}: {err}");
        }
    }

    #[test]
    fn users_without_passwd_file() {
        let root = FakeRoot::new("nopasswd", None, None);
        assert_eq!(lookup_user(&root.0, "0").unwrap(), (0, 0));
        assert_eq!(lookup_user(&root.0, "1000:1000").unwrap(), (1000, 1000));
        let err = lookup_user(&root.0, "root").unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to find user root: no matching entries in passwd file"
        );
    }
}
