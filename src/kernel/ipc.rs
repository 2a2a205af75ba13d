//! System V IPC objects, to show what an IPC namespace hides.
//!
//! Message queues, semaphores and shared memory segments are found by a
//! numeric key, system-wide. Each IPC namespace has its own set of keys, so
//! a queue made on the host simply does not exist for a process inside.

use nix::errno::Errno;
use nix::mount::MsFlags;

/// `mount -t mqueue mqueue TARGET`: the POSIX message queues of the
/// caller's IPC namespace (Docker's /dev/mqueue).
pub fn mount_mqueue(target: &std::path::Path) -> Result<(), crate::kernel::mounts::MountError> {
    std::fs::create_dir_all(target).map_err(|e| {
        crate::kernel::mounts::MountError::new(
            "create",
            target,
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    crate::kernel::mounts::mount_fs("mqueue", target, flags, None)
}

/// A message queue that exists until this guard is dropped.
#[derive(Debug)]
pub struct MessageQueue {
    pub key: libc::key_t,
    id: libc::c_int,
}

impl MessageQueue {
    /// `ipcmk --queue`: creates a queue under `key` in the caller's IPC
    /// namespace (failing if one already exists there).
    pub fn create(key: libc::key_t) -> Result<MessageQueue, Errno> {
        let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        if id < 0 {
            return Err(Errno::last());
        }
        Ok(MessageQueue { key, id })
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        unsafe {
            libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// Whether a queue with `key` exists in the caller's IPC namespace.
pub fn queue_exists(key: libc::key_t) -> bool {
    unsafe { libc::msgget(key, 0) >= 0 }
}

impl MessageQueue {
    /// Creates a queue under the first free key from `base` on, so that two
    /// runs at the same time do not trip over each other.
    pub fn create_unique(base: libc::key_t) -> Result<MessageQueue, Errno> {
        let mut last = Errno::EEXIST;
        for key in base..base + 64 {
            match MessageQueue::create(key) {
                Ok(queue) => return Ok(queue),
                Err(Errno::EEXIST) => last = Errno::EEXIST,
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }
}
