//! `lab watch`: check again on every save, as rustlings does, and move on
//! to the next exercise when one passes.
//!
//! Saves are seen through inotify (the `notify` crate, with its small
//! debouncer: an editor's write, rename and chmod make one check). inotify
//! never hears of an edit made on the other side of a shared folder (a
//! Vagrant box's vboxsf, NFS, 9p, a FUSE mount), so on those the watcher
//! polls the files' modification times instead, every half second.

use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use container_lab::kernel::signals;
use container_lab::lab::exercises::{Exercise, DIR, EXERCISES};
use notify::{PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer_opt, Config, DebounceEventResult};

use crate::checkout::Checkout;
use crate::run;

/// One check per burst of events within this time.
const SETTLE: Duration = Duration::from_millis(200);
const POLL_EVERY: Duration = Duration::from_millis(500);

pub fn watch(
    checkout: &Checkout,
    first: &'static Exercise,
    limit: u64,
) -> anyhow::Result<ExitCode> {
    let all: Vec<&Exercise> = EXERCISES.iter().collect();
    run::prepare(&all)?;
    let dir = checkout.file(DIR);
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let poll = seen_only_by_polling(&dir);
    let _watcher = start(&dir, poll, tx)?;
    println!(
        "watching {DIR}/ ({}): every save checks the exercise again; Ctrl-C ends",
        if poll {
            "polling: a shared folder's edits bypass inotify"
        } else {
            "inotify"
        }
    );
    println!();
    let mut current = first;
    loop {
        let outcome = run::check_and_report(checkout, current, limit)?;
        if signals::interrupted().is_some() {
            return Ok(ExitCode::from(130));
        }
        if outcome.passed() {
            match checkout.progress()?.next_after(current) {
                Some(next) => {
                    current = next;
                    println!();
                    continue;
                }
                None => return Ok(ExitCode::SUCCESS),
            }
        }
        println!();
        println!("waiting for {} to be saved…", current.path());
        let wanted = Path::new(DIR).join(current.file);
        loop {
            if signals::interrupted().is_some() {
                return Ok(ExitCode::from(130));
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(events)) if events.iter().any(|e| e.path.ends_with(&wanted)) => break,
                Ok(Err(err)) => anyhow::bail!("watching {} failed: {err}", dir.display()),
                Ok(Ok(_)) | Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the watcher of {} stopped", dir.display())
                }
            }
        }
        println!();
    }
}

/// Either watcher, kept alive while the returned value is held.
fn start(
    dir: &Path,
    poll: bool,
    tx: mpsc::Sender<DebounceEventResult>,
) -> anyhow::Result<Box<dyn std::any::Any>> {
    let config = Config::default()
        .with_timeout(SETTLE)
        .with_notify_config(notify::Config::default().with_poll_interval(POLL_EVERY));
    Ok(if poll {
        let mut debouncer = new_debouncer_opt::<_, PollWatcher>(config, tx)?;
        debouncer.watcher().watch(dir, RecursiveMode::Recursive)?;
        Box::new(debouncer)
    } else {
        let mut debouncer = new_debouncer_opt::<_, RecommendedWatcher>(config, tx)?;
        debouncer.watcher().watch(dir, RecursiveMode::Recursive)?;
        Box::new(debouncer)
    })
}

/// Filesystems whose files may change without the local kernel knowing.
fn seen_only_by_polling(dir: &Path) -> bool {
    use nix::sys::statfs::FsType;
    const POLLED: [FsType; 6] = [
        FsType(0x6969),      // NFS
        FsType(0xfe53_4d42), // SMB2
        FsType(0xff53_4d42), // CIFS
        FsType(0x0102_1997), // 9p
        FsType(0x786f_4256), // vboxsf
        FsType(0x6573_5546), // FUSE
    ];
    nix::sys::statfs::statfs(dir).is_ok_and(|fs| POLLED.contains(&fs.filesystem_type()))
}
