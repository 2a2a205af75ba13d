//! The I/O controller (v1's `blkio`): a relative weight against sibling
//! cgroups, and ceilings per disk on bytes and operations per second, read
//! and write apart (blk-throttle). A limit names a whole disk by its device
//! number: the kernel refuses a partition's (ENODEV).
//!
//! What a limit applies to is I/O the cgroup's processes submit themselves:
//! direct I/O, reads that miss the page cache, and writes they force out
//! (fsync). Buffered writes reach the disk later, from the kernel's
//! flusher threads; v2 charges those to the cgroup that dirtied the pages
//! (cgroup writeback), v1 to nobody, so on v1 they are never throttled.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::v1::V1Dirs;
use super::{v2, CgroupError, Controller, Writes};
use crate::support::fs::read_kernel_file;

pub(super) const V1_HIERARCHIES: &[&str] = &["blkio"];
pub(super) const V2_CONTROLLERS: &[&str] = &["io"];

/// `docker run --blkio-weight` and `--device-{read,write}-{bps,iops}`;
/// the OCI spec's `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Io {
    /// 10 to 1000 (OCI `weight`).
    pub weight: Option<u16>,
    /// Bytes per second (OCI `throttleReadBpsDevice`).
    #[serde(default)]
    pub read_bps: Vec<Throttle>,
    #[serde(default)]
    pub write_bps: Vec<Throttle>,
    /// Operations per second (OCI `throttleReadIOPSDevice`).
    #[serde(default)]
    pub read_iops: Vec<Throttle>,
    #[serde(default)]
    pub write_iops: Vec<Throttle>,
}

/// A block device's number, `MAJOR:MINOR`, as the cgroup files name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// One ceiling on one disk; a rate of 0 removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    pub device: DeviceNumber,
    pub rate: u64,
}

/// The kernel's I/O counters for one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    pub device: DeviceNumber,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

impl IoStats {
    /// How far each counter moved since `before`.
    pub fn since(&self, before: &IoStats) -> IoStats {
        IoStats {
            device: self.device,
            read_bytes: self.read_bytes.saturating_sub(before.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
            reads: self.reads.saturating_sub(before.reads),
            writes: self.writes.saturating_sub(before.writes),
        }
    }
}

impl Io {
    /// Reads and writes on `device` of at most `rate` bytes per second each.
    pub fn bps(device: DeviceNumber, rate: u64) -> Io {
        let limit = vec![Throttle { device, rate }];
        Io {
            read_bps: limit.clone(),
            write_bps: limit,
            ..Io::default()
        }
    }

    fn is_empty(&self) -> bool {
        *self == Io::default()
    }

    // ANCHOR: v1
    pub(super) fn set_v1(&self, dirs: &V1Dirs, out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        let dir = dirs.require("blkio", Controller::Io)?;
        if let Some(weight) = self.weight {
            // CFQ's file before kernel 5.0, BFQ's after.
            let file = ["blkio.weight", "blkio.bfq.weight"]
                .map(|name| dir.join(name))
                .into_iter()
                .find(|f| f.exists())
                .ok_or_else(|| CgroupError::NoIoWeight { dir: dir.into() })?;
            out.write(file, weight.to_string())?;
        }
        for (name, throttles) in [
            ("blkio.throttle.read_bps_device", &self.read_bps),
            ("blkio.throttle.write_bps_device", &self.write_bps),
            ("blkio.throttle.read_iops_device", &self.read_iops),
            ("blkio.throttle.write_iops_device", &self.write_iops),
        ] {
            for t in throttles {
                // "MAJ:MIN RATE", one rule per write; a rate of 0 removes it.
                out.write(dir.join(name), format!("{} {}", t.device, t.rate))?;
            }
        }
        Ok(())
    }
    // ANCHOR_END: v1

    /// v2 keeps a disk's four ceilings on one line of `io.max`, `max` for
    /// none, and weighs from 1 to 10000 in `io.weight` (or 1 to 1000 in
    /// BFQ's `io.bfq.weight`).
    // ANCHOR: v2
    pub(super) fn set_v2(&self, dirs: &[PathBuf], out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        let dir = v2::require(dirs, Controller::Io)?;
        if let Some(weight) = self.weight {
            let bfq = dir.join("io.bfq.weight");
            let (file, value) = if bfq.exists() {
                (bfq, u64::from(weight))
            } else {
                // runc's conversion: 10 → 1, 1000 → 10000.
                let weight = u64::from(weight.clamp(10, 1000));
                (dir.join("io.weight"), 1 + (weight - 10) * 9999 / 990)
            };
            if !file.exists() {
                return Err(CgroupError::NoIoWeight { dir: dir.into() });
            }
            out.write(file, value.to_string())?;
        }
        let mut lines: BTreeMap<DeviceNumber, Vec<String>> = BTreeMap::new();
        for (key, throttles) in [
            ("rbps", &self.read_bps),
            ("wbps", &self.write_bps),
            ("riops", &self.read_iops),
            ("wiops", &self.write_iops),
        ] {
            for t in throttles {
                let rate = if t.rate == 0 {
                    "max".into()
                } else {
                    t.rate.to_string()
                };
                lines
                    .entry(t.device)
                    .or_default()
                    .push(format!("{key}={rate}"));
            }
        }
        for (device, limits) in lines {
            // "MAJ:MIN rbps=… wbps=…": keys not named keep their value.
            out.write(dir.join("io.max"), format!("{device} {}", limits.join(" ")))?;
        }
        Ok(())
    }
    // ANCHOR_END: v2
}

/// `blkio.throttle.io_service_bytes` and `io_serviced`: "MAJ:MIN Read N"
/// lines (and Write, Sync, Async, Discard, Total).
pub(super) fn stats_v1(dirs: &V1Dirs) -> Vec<IoStats> {
    let mut stats: BTreeMap<DeviceNumber, IoStats> = BTreeMap::new();
    for (name, bytes) in [
        ("blkio.throttle.io_service_bytes", true),
        ("blkio.throttle.io_serviced", false),
    ] {
        let text = read_kernel_file(dirs.file("blkio", name)).unwrap_or_default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(device), Some(op), Some(value)) = (
                words.next().and_then(parse_device_number),
                words.next(),
                words.next().and_then(|v| v.parse::<u64>().ok()),
            ) else {
                continue;
            };
            let entry = stats.entry(device).or_insert(IoStats {
                device,
                ..IoStats::default()
            });
            match (op, bytes) {
                ("Read", true) => entry.read_bytes = value,
                ("Write", true) => entry.write_bytes = value,
                ("Read", false) => entry.reads = value,
                ("Write", false) => entry.writes = value,
                _ => {}
            }
        }
    }
    stats.into_values().collect()
}

/// `io.stat`: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N".
pub(super) fn stats_v2(dir: &Path) -> Vec<IoStats> {
    let text = read_kernel_file(dir.join("io.stat")).unwrap_or_default();
    let mut stats = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(device) = words.next().and_then(parse_device_number) else {
            continue;
        };
        let mut entry = IoStats {
            device,
            ..IoStats::default()
        };
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let value = value.parse().unwrap_or(0);
            match key {
                "rbytes" => entry.read_bytes = value,
                "wbytes" => entry.write_bytes = value,
                "rios" => entry.reads = value,
                "wios" => entry.writes = value,
                _ => {}
            }
        }
        stats.push(entry);
    }
    stats
}

fn parse_device_number(text: &str) -> Option<DeviceNumber> {
    let (major, minor) = text.split_once(':')?;
    Some(DeviceNumber {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// The device number of a whole disk's node, for a limit on it. Refused,
/// with the device named: a path that is not there, anything but a block
/// device, and a partition (the kernel throttles whole disks only).
pub fn block_device(path: &Path) -> Result<DeviceNumber, CgroupError> {
    let meta = fs::metadata(path).map_err(|source| CgroupError::NoSuchDevice {
        path: path.into(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(CgroupError::NotABlockDevice { path: path.into() });
    }
    let device = DeviceNumber {
        major: nix::sys::stat::major(meta.rdev()) as u32,
        minor: nix::sys::stat::minor(meta.rdev()) as u32,
    };
    // sysfs has a `partition` file in a partition's directory, which sits
    // inside its disk's: /sys/block/sda/sda1.
    let sys = Path::new("/sys/dev/block").join(device.to_string());
    if sys.join("partition").exists() {
        let disk = fs::canonicalize(&sys)
            .ok()
            .and_then(|p| Some(Path::new("/dev").join(p.parent()?.file_name()?)))
            .unwrap_or_else(|| PathBuf::from("the disk it is on"));
        return Err(CgroupError::Partition {
            path: path.into(),
            disk,
        });
    }
    Ok(device)
}

/// `--device-read-bps PATH:RATE` and its siblings, as given: the path is
/// looked up when the container starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleSpec {
    pub path: PathBuf,
    pub rate: u64,
}

impl ThrottleSpec {
    pub fn resolve(&self) -> Result<Throttle, CgroupError> {
        Ok(Throttle {
            device: block_device(&self.path)?,
            rate: self.rate,
        })
    }
}

/// Docker's `PATH:RATE` for bytes per second: a number with an optional
/// unit (`kb`, `mb`, `gb` …, powers of 1024), such as `/dev/sda:1mb`.
pub fn parse_device_bps(text: &str) -> Result<ThrottleSpec, String> {
    let (path, rate) = split_device(text)?;
    let rate = parse_rate(rate).ok_or_else(|| {
        format!("invalid rate for device {text:?}: use <device-path>:<number>[<unit>], a positive number with an optional unit kb, mb or gb, e.g. /dev/sda:1mb")
    })?;
    Ok(ThrottleSpec {
        path: path.into(),
        rate,
    })
}

/// Docker's `PATH:RATE` for operations per second: a whole number.
pub fn parse_device_iops(text: &str) -> Result<ThrottleSpec, String> {
    let (path, rate) = split_device(text)?;
    let rate = rate.parse().map_err(|_| {
        format!("invalid rate for device {text:?}: use <device-path>:<number>, a positive whole number, e.g. /dev/sda:1000")
    })?;
    Ok(ThrottleSpec {
        path: path.into(),
        rate,
    })
}

/// Docker's `--blkio-weight`: 10 to 1000 (0, Docker's default, sets none).
pub fn parse_blkio_weight(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(weight) if weight == 0 || (10..=1000).contains(&weight) => Ok(weight),
        _ => Err(format!(
            "invalid blkio weight {text:?}: the range is from 10 to 1000 (0 for none)"
        )),
    }
}

fn split_device(text: &str) -> Result<(&str, &str), String> {
    let (path, rate) = text.split_once(':').ok_or_else(|| {
        format!("bad format {text:?}: use <device-path>:<rate>, e.g. /dev/sda:1mb")
    })?;
    if !path.starts_with("/dev/") {
        return Err(format!(
            "bad format for device path {text:?}: the path must be a device under /dev/, e.g. /dev/sda"
        ));
    }
    Ok((path, rate))
}

/// A rate in bytes per second, in Docker's units: `2m`, `512k`, `1048576`.
pub fn parse_bytes_per_second(text: &str) -> Result<u64, String> {
    parse_rate(text).ok_or_else(|| {
        format!("invalid rate {text:?}: use a number with an optional unit kb, mb or gb, e.g. 2mb")
    })
}

/// Docker's byte sizes (go-units' RAMInBytes): `1048576`, `512k`, `1.5mb`,
/// `2MiB`; the units are powers of 1024.
fn parse_rate(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let unit = unit.trim_start_matches(' ');
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let bytes = value * 1024f64.powi(power);
    (bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_docker() {
        assert_eq!(parse_rate("1048576"), Some(1 << 20));
        assert_eq!(parse_rate("1mb"), Some(1 << 20));
        assert_eq!(parse_rate("1M"), Some(1 << 20));
        assert_eq!(parse_rate("2MiB"), Some(2 << 20));
        assert_eq!(parse_rate("512k"), Some(512 << 10));
        assert_eq!(parse_rate("1.5m"), Some(3 << 19));
        assert_eq!(parse_rate("1 gb"), Some(1 << 30));
        assert_eq!(parse_rate("0"), Some(0));
        for bad in ["", "mb", "-1", "1x", "1.m", "fast", "1mbb"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn device_rates_need_a_dev_path_and_a_rate() {
        let spec = parse_device_bps("/dev/loop0:2mb").unwrap();
        assert_eq!(
            (spec.path.as_path(), spec.rate),
            (Path::new("/dev/loop0"), 2 << 20)
        );
        assert_eq!(parse_device_iops("/dev/sda:100").unwrap().rate, 100);
        assert!(parse_device_bps("/dev/sda")
            .unwrap_err()
            .starts_with("bad format"));
        assert!(parse_device_bps("sda:1mb")
            .unwrap_err()
            .starts_with("bad format for device path"));
        assert!(parse_device_bps("/dev/sda:fast")
            .unwrap_err()
            .starts_with("invalid rate"));
        assert!(parse_device_iops("/dev/sda:1.5")
            .unwrap_err()
            .starts_with("invalid rate"));
        assert!(parse_device_iops("/dev/sda:1k").is_err());
    }

    #[test]
    fn weights_run_from_10_to_1000() {
        assert_eq!(parse_blkio_weight("500"), Ok(500));
        assert_eq!(parse_blkio_weight("0"), Ok(0));
        for bad in ["5", "1001", "x", "-1"] {
            assert!(parse_blkio_weight(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_whole_disks_take_limits() {
        let err = block_device(Path::new("/dev/no-such-disk")).unwrap_err();
        assert!(err.to_string().contains("/dev/no-such-disk"), "{err}");
        let err = block_device(Path::new("/dev/null")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/dev/null is not a block device"),
            "{err}"
        );
    }

    #[test]
    fn counters_parse_as_each_version_writes_them() {
        let dir = std::env::temp_dir().join(format!("lab-io-stat-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("io.stat"),
            "7:0 rbytes=4199424 wbytes=4194304 rios=9 wios=8 dbytes=0 dios=0\n",
        )
        .unwrap();
        let stats = stats_v2(&dir);
        assert_eq!(
            stats,
            vec![IoStats {
                device: DeviceNumber { major: 7, minor: 0 },
                read_bytes: 4199424,
                write_bytes: 4194304,
                reads: 9,
                writes: 8,
            }]
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
