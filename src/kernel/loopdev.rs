//! Loop devices: a regular file seen as a disk (`/dev/loopN`), with a
//! device number of its own that I/O limits can name. `losetup` does the
//! same with the same ioctls.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::error::IoError;

const LOOP_CONTROL: &str = "/dev/loop-control";
// <linux/loop.h>
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// Detach by itself once the last user (a mount) closes it.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    size_limit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// An attached loop device; dropping it detaches it (at once, or as soon
/// as its filesystem is unmounted). It holds the device open meanwhile:
/// with AUTOCLEAR, the last close detaches it.
#[derive(Debug)]
pub struct LoopDevice {
    device: File,
    path: PathBuf,
    major: u32,
    minor: u32,
}

impl LoopDevice {
    /// `losetup --find --show BACKING`: asks /dev/loop-control for a free
    /// device and gives it the file (LOOP_SET_FD), marked to detach by
    /// itself when its last user goes (LO_FLAGS_AUTOCLEAR).
    // ANCHOR: attach
    pub fn attach(backing: &Path) -> Result<LoopDevice, IoError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(backing)
            .map_err(|e| IoError::new("open", backing, e))?;
        let control = File::open(LOOP_CONTROL).map_err(|e| {
            IoError::new(
                "open (is the loop module loaded? modprobe loop)",
                LOOP_CONTROL,
                e,
            )
        })?;
        // Another process may take the free device first: then ask again.
        for _ in 0..8 {
            let number = ioctl(&control, LOOP_CTL_GET_FREE, 0)
                .map_err(|e| IoError::new("find a free loop device with", LOOP_CONTROL, e))?;
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let device = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| IoError::new("open", &path, e))?;
            match ioctl(&device, LOOP_SET_FD, file.as_raw_fd() as libc::c_ulong) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
                Err(e) => return Err(IoError::new("attach a file to", &path, e)),
                Ok(_) => {}
            }
            let rdev = device
                .metadata()
                .map_err(|e| IoError::new("stat", &path, e))?
                .rdev();
            let attached = LoopDevice {
                device,
                path: path.clone(),
                major: nix::sys::stat::major(rdev) as u32,
                minor: nix::sys::stat::minor(rdev) as u32,
            };
            // SAFETY: all-zero is a valid loop_info64 (no flags, no names).
            let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
            info.flags = LO_FLAGS_AUTOCLEAR;
            let name = backing.as_os_str().as_encoded_bytes();
            let len = name.len().min(info.file_name.len() - 1);
            info.file_name[..len].copy_from_slice(&name[..len]);
            ioctl(
                &attached.device,
                LOOP_SET_STATUS64,
                &info as *const _ as libc::c_ulong,
            )
            .map_err(|e| IoError::new("set the status of", &path, e))?;
            return Ok(attached);
        }
        Err(IoError::new(
            "find a free loop device with",
            LOOP_CONTROL,
            std::io::Error::from_raw_os_error(libc::EBUSY),
        ))
    }
    // ANCHOR_END: attach

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its major and minor number (7 and N).
    pub fn number(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// `losetup --detach`, then waits (a second at most) until sysfs shows
    /// no backing file. A device still mounted somewhere detaches only
    /// when it is unmounted: the kernel keeps the request (AUTOCLEAR).
    pub fn detach(self) -> Result<(), IoError> {
        self.clear()?;
        let path = self.path.clone();
        drop(self);
        for _ in 0..100 {
            if backing_file(&path).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(())
    }

    fn clear(&self) -> Result<(), IoError> {
        match ioctl(&self.device, LOOP_CLR_FD, 0) {
            // ENXIO: already detached.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
            Err(e) => Err(IoError::new("detach", &self.path, e)),
            Ok(_) => Ok(()),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(err) = self.clear() {
            log::warn!("{err}");
        }
    }
}

/// The backing file of `/dev/loopN` as sysfs names it, while attached.
pub fn backing_file(device: &Path) -> Option<PathBuf> {
    let name = device.file_name()?.to_str()?;
    let text = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(text.trim_end()))
}

fn ioctl(file: &File, request: libc::c_ulong, arg: libc::c_ulong) -> std::io::Result<i32> {
    // SAFETY: the loop ioctls take an integer or a pointer to a live struct.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
