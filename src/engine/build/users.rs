//! Users and groups by name, from the image's own `/etc/passwd` and
//! `/etc/group` (as Docker resolves `COPY --chown` and `USER`).

use super::tree::Tree;

/// What a `user[:group]` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// The other groups the user is a member of (for a RUN step).
    pub groups: Vec<u32>,
    /// From passwd, for `HOME` when the environment has none.
    pub home: Option<String>,
}

fn read(tree: &dyn Tree, path: &str) -> String {
    let mut text = String::new();
    if let Ok(mut file) = tree.open(path) {
        use std::io::Read;
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// Lines of a colon-separated file, split.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// `--chown` as Docker reads it: names from the image, numbers as they
/// are; a user without a group gets the user's number as the group too.
pub fn chown(tree: &dyn Tree, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(tree, "etc/passwd");
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => records(&passwd)
            .find(|r| r.first() == Some(&user))
            .and_then(|r| r.get(2).and_then(|u| u.parse().ok()))
            .ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?,
    };
    let gid = match group {
        None => uid,
        Some(group) => group_id(tree, group)?,
    };
    Ok((uid, gid))
}

fn group_id(tree: &dyn Tree, group: &str) -> Result<u32, String> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    records(&read(tree, "etc/group"))
        .find(|r| r.first() == Some(&group))
        .and_then(|r| r.get(2).and_then(|g| g.parse().ok()))
        .ok_or_else(|| format!("unable to find group {group}: no matching entries in group file"))
}

/// `USER` for a RUN step: the user's primary group unless one is given,
/// and the groups that list the user as a member.
pub fn run_user(tree: &dyn Tree, spec: &str) -> Result<User, String> {
    if spec.is_empty() {
        return run_user(tree, "root").or(Ok(User {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: Some("/root".into()),
        }));
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(tree, "etc/passwd");
    let entry = records(&passwd).find(|r| {
        r.first() == Some(&user) || (user.parse::<u32>().is_ok() && r.get(2) == Some(&user))
    });
    let (uid, primary, name, home) = match (&entry, user.parse::<u32>()) {
        (Some(r), _) => (
            r.get(2).and_then(|u| u.parse().ok()).unwrap_or(0),
            r.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            r.first().map(|s| s.to_string()),
            r.get(5).map(|s| s.to_string()),
        ),
        (None, Ok(n)) => (n, 0, None, None),
        (None, Err(_)) => {
            return Err(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        }
    };
    let gid = match group {
        Some(g) => group_id(tree, g)?,
        None => primary,
    };
    let groups = match (&name, group) {
        (Some(name), None) => records(&read(tree, "etc/group"))
            .filter(|r| {
                r.get(3)
                    .is_some_and(|members| members.split(',').any(|m| m == name))
            })
            .filter_map(|r| r.get(2).and_then(|g| g.parse().ok()))
            .filter(|g| *g != gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(User {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::build::tree::DirTree;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:app\napp:x:1001:\n",
        )
        .unwrap();
        let tree = DirTree {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(chown(&tree, "app").unwrap(), (1000, 1000));
        assert_eq!(chown(&tree, "app:staff").unwrap(), (1000, 50));
        assert_eq!(chown(&tree, "10:20").unwrap(), (10, 20));
        assert_eq!(
            chown(&tree, "bob").unwrap_err(),
            "unable to find user bob: no matching entries in passwd file"
        );
        let user = run_user(&tree, "app").unwrap();
        assert_eq!((user.uid, user.gid, user.groups), (1000, 1001, vec![50]));
        assert_eq!(run_user(&tree, "").unwrap().uid, 0);
        assert_eq!(run_user(&tree, "4242").unwrap().uid, 4242);
    }
}
