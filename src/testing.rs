//! What the unit tests of every floor share: a directory removed when the
//! test ends (also when it fails), the names in a directory, and a process
//! that existed and is gone.

use std::fs;
use std::path::{Path, PathBuf};

/// A directory under the system's temporary directory, named after the
/// test and this process, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("lab-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A process that no longer exists, with the start time it had.
pub fn dead_process() -> (i32, u64) {
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let start = crate::kernel::process::start_time(pid).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    (pid, start)
}
