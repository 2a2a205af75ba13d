//! The store's own tests: records appear whole, concurrent writers lose
//! nothing, names and lookups follow Docker, broken records are named.

use super::names::{ADJECTIVES, SCIENTISTS};
use super::*;
use crate::support::time::{parse_rfc3339, ZERO_TIME};
use crate::testing::{dead_process, files_in};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// A store under /tmp, removed when the test ends (also on failure).
struct TempStore {
    root: PathBuf,
    store: Store,
}

impl TempStore {
    fn new(test: &str) -> TempStore {
        let root = PathBuf::from(format!("/tmp/lab-store-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let store = Store::new(&LabDirs {
            data: root.join("lib"),
            run: root.join("run"),
        });
        TempStore { root, store }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn named(name: &str) -> NewContainer {
    NewContainer {
        name: Some(name.to_string()),
        hostname: None,
        config: RunConfig::new("busybox", &["sh"]),
        owned: false,
    }
}

fn id_with(prefix: &str) -> String {
    format!("{prefix}{}", "0".repeat(64 - prefix.len()))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn create_writes_config_and_state_atomically_without_temp_files() {
    let t = TempStore::new("atomic");
    let record = t.store.create(named("web")).unwrap();
    assert!(is_id(&record.id), "{}", record.id);
    assert_eq!(record.state.status, Status::Created);
    for _ in 0..20 {
        t.store
            .update(&record.id, |r| r.state.restart_count += 1)
            .unwrap();
    }
    assert_eq!(
        files_in(&t.store.data_dir(&record.id)),
        ["config.json", "lock"]
    );
    assert_eq!(files_in(&t.store.run_dir(&record.id)), ["state.json"]);

    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(t.store.state_path(&record.id)).unwrap()).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["restart_count"], 20);
    assert_eq!(state["started_at"], ZERO_TIME);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(t.store.config_path(&record.id)).unwrap()).unwrap();
    assert_eq!(config["name"], "web");
    assert_eq!(config["config"]["tty"], false);
    let created = config["created"].as_str().unwrap();
    assert_eq!(parse_rfc3339(created), Some(record.created), "{created}");
}

#[test]
fn concurrent_updates_under_the_lock_lose_nothing() {
    let t = TempStore::new("concurrent");
    let id = t.store.create(named("counter")).unwrap().id;
    let store = Arc::new(t.store.clone());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let id = id.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    store
                        .update(&id, |r| {
                            // Widen the window between read and write.
                            std::thread::yield_now();
                            r.state.restart_count += 1;
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(t.store.get(&id).unwrap().state.restart_count, 400);
}

#[test]
fn concurrent_updates_from_processes_lose_nothing() {
    let t = TempStore::new("forked");
    let id = t.store.create(named("counter")).unwrap().id;
    let mut children = Vec::new();
    for _ in 0..4 {
        // SAFETY: the child only touches the store and exits without
        // returning into the test harness.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok =
                    (0..25).all(|_| t.store.update(&id, |r| r.state.restart_count += 1).is_ok());
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => children.push(child),
        }
    }
    for child in children {
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }
    assert_eq!(t.store.get(&id).unwrap().state.restart_count, 100);
}

#[test]
fn only_one_of_many_concurrent_creates_gets_a_name() {
    let t = TempStore::new("name-race");
    let store = Arc::new(t.store.clone());
    let results: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.create(named("web")))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    let winners: Vec<&Record> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(err) = result {
            assert_eq!(
                err.to_string(),
                format!(
                    "the container name \"/web\" is already in use by container \"{}\"; remove it or pick another --name",
                    winners[0].id
                )
            );
        }
    }
    assert_eq!(t.store.list().unwrap().len(), 1);
}

#[test]
fn lookup_tries_name_then_id_then_unique_prefix() {
    let t = TempStore::new("lookup");
    let create = |name: &str, id: &str, secs| {
        t.store
            .create_with(named(name), id_with(id), at(secs))
            .unwrap()
    };
    let web = create("web", "abc1", 1);
    let db = create("db", "abc2", 2);
    // A name that is another container's ID prefix: the name wins.
    let tricky = create("abc2", "ddd", 3);

    assert_eq!(t.store.get("web").unwrap().id, web.id);
    assert_eq!(t.store.get("/web").unwrap().id, web.id);
    assert_eq!(t.store.get(&db.id).unwrap().name, "db");
    assert_eq!(t.store.get("abc1").unwrap().id, web.id);
    assert_eq!(t.store.get("ABC1").unwrap().id, web.id);
    assert_eq!(t.store.get("abc2").unwrap().id, tricky.id);
    assert_eq!(t.store.get("d").unwrap().id, tricky.id);

    let err = t.store.get("abc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple containers found with prefix abc; use more characters or the name"
    );
    for missing in ["nope", "abc3", "", "/", "../../etc"] {
        let err = t.store.get(missing).unwrap_err();
        assert!(
            matches!(err, StoreError::NoSuchContainer(_)),
            "{missing}: {err}"
        );
    }
    assert_eq!(
        t.store.get("nope").unwrap_err().to_string(),
        "no such container: nope"
    );

    let names: Vec<String> = t
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["abc2", "db", "web"], "newest first");
}

#[test]
fn names_follow_dockers_rules() {
    let t = TempStore::new("names");
    for good in ["web", "/web", "a1", "my_app.v2-x", "9lives"] {
        validate_name(good).unwrap();
    }
    for bad in [
        "", "/", "a", "_web", "-web", ".web", "we b", "web/1", "wéb", "web:1",
    ] {
        let err = validate_name(bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidName(_)), "{bad}");
        assert!(t.store.create(named(bad)).is_err(), "{bad}");
    }
    assert!(t.store.list().unwrap().is_empty());

    let record = t.store.create(named("/slashed")).unwrap();
    assert_eq!(record.name, "slashed");

    let generated = t
        .store
        .create(NewContainer {
            name: None,
            ..named("x")
        })
        .unwrap();
    let (adjective, scientist) = generated.name.split_once('_').unwrap();
    assert!(ADJECTIVES.contains(&adjective), "{}", generated.name);
    assert!(SCIENTISTS.contains(&scientist), "{}", generated.name);

    // With every plain name taken, a digit is appended.
    let name = generate_name(|n| !n.ends_with(|c: char| c.is_ascii_digit())).unwrap();
    assert!(name.ends_with(|c: char| c.is_ascii_digit()), "{name}");
}

#[test]
fn update_and_remove_check_their_input() {
    let t = TempStore::new("update");
    let record = t.store.create(named("web")).unwrap();
    let err = t
        .store
        .update(&record.id, |r| r.name = "other".to_string())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Immutable { field: "name" }),
        "{err}"
    );
    assert_eq!(t.store.get("web").unwrap(), record);

    let updated = t
        .store
        .update(&record.id, |r| {
            r.config.tty = true;
            r.state.status = Status::Exited;
            r.state.exit_code = 3;
        })
        .unwrap();
    assert_eq!(t.store.get("web").unwrap(), updated);

    for bad in ["../etc", "abc", &record.id.to_uppercase()] {
        assert!(matches!(
            t.store.update(bad, |_| {}).unwrap_err(),
            StoreError::InvalidId(_)
        ));
    }

    t.store.remove(&record.id).unwrap();
    assert!(!t.store.data_dir(&record.id).exists());
    assert!(!t.store.run_dir(&record.id).exists());
    assert!(matches!(
        t.store.get("web").unwrap_err(),
        StoreError::NoSuchContainer(_)
    ));
    assert!(matches!(
        t.store.update(&record.id, |_| {}).unwrap_err(),
        StoreError::NoSuchContainer(_)
    ));
    // The name is free again.
    t.store.create(named("web")).unwrap();
}

#[test]
fn a_record_without_state_after_a_reboot_reads_as_created() {
    let t = TempStore::new("reboot");
    let record = t.store.create(named("web")).unwrap();
    t.store
        .update(&record.id, |r| r.state.status = Status::Exited)
        .unwrap();
    fs::remove_dir_all(&t.store.run).unwrap();
    let read = t.store.get("web").unwrap();
    assert_eq!(read.state, State::default());
    // Writing recreates the run directory.
    t.store
        .update(&record.id, |r| r.state.status = Status::Exited)
        .unwrap();
    assert_eq!(t.store.get("web").unwrap().state.status, Status::Exited);
}

#[test]
fn a_corrupt_record_is_skipped_and_named_by_get() {
    let t = TempStore::new("corrupt");
    let web = t.store.create(named("web")).unwrap();
    let db = t.store.create(named("db")).unwrap();
    let cache = t.store.create(named("cache")).unwrap();
    // A truncated config, and a garbage state file.
    let config = fs::read(t.store.config_path(&web.id)).unwrap();
    fs::write(t.store.config_path(&web.id), &config[..config.len() / 2]).unwrap();
    fs::write(t.store.state_path(&db.id), b"\x00\x01garbage").unwrap();

    let names: Vec<String> = t
        .store
        .list()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["cache"]);
    let (_, broken) = t.store.list_all().unwrap();
    assert_eq!(broken.len(), 2);
    let of = |id: &str| broken.iter().find(|b| b.id == id).unwrap().clone();
    assert_eq!(of(&web.id).path, t.store.config_path(&web.id));
    assert_eq!(of(&web.id).name, None);
    assert_eq!(of(&db.id).path, t.store.state_path(&db.id));
    assert_eq!(of(&db.id).name.as_deref(), Some("db"));

    // The others work; the broken ones are errors that name the file.
    assert_eq!(t.store.get("cache").unwrap().id, cache.id);
    t.store
        .update(&cache.id, |r| r.state.restart_count = 1)
        .unwrap();
    for (key, path) in [
        (web.id.as_str(), t.store.config_path(&web.id)),
        (&web.id[..12], t.store.config_path(&web.id)),
        ("db", t.store.state_path(&db.id)),
    ] {
        let err = t.store.get(key).unwrap_err();
        assert!(matches!(err, StoreError::Broken { .. }), "{key}: {err}");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("rm -f"), "{text}");
    }
    // The name of a record whose config survived stays taken.
    assert!(matches!(
        t.store.create(named("db")).unwrap_err(),
        StoreError::Conflict { .. }
    ));
    // And they can be removed.
    t.store.remove(&web.id).unwrap();
    t.store.remove(&db.id).unwrap();
    assert!(t.store.list_all().unwrap().1.is_empty());
    assert!(!t.store.data_dir(&web.id).exists() && !t.store.run_dir(&db.id).exists());
}

#[test]
fn a_record_appears_whole_and_stale_temporaries_are_removed() {
    let t = TempStore::new("temporaries");
    let record = t.store.create(named("web")).unwrap();
    // Nothing but the records themselves in the data directory.
    assert_eq!(files_in(&t.store.data), [record.id.as_str(), "names.lock"]);
    // A create killed half-way (its maker is dead), one in progress
    // (this process), and a runtime half without its record.
    let (dead, dead_start) = dead_process();
    let stale = t
        .store
        .data
        .join(format!("{CREATING}{dead}.{dead_start}.{}", id_with("5")));
    let live = t
        .store
        .data
        .join(format!("{CREATING}{}.{}", owner_tag(), id_with("6")));
    fs::create_dir_all(stale.join("x")).unwrap();
    fs::create_dir_all(&live).unwrap();
    let orphan = t.store.run_dir(&id_with("7"));
    fs::create_dir_all(&orphan).unwrap();
    fs::write(orphan.join("state.json"), b"{}").unwrap();
    assert_eq!(
        t.store.list().unwrap().len(),
        1,
        "temporaries are not records"
    );
    assert_eq!(t.store.remove_stale_temporaries().unwrap(), 2);
    assert!(!stale.exists() && !orphan.exists());
    assert!(live.exists(), "a create in progress is left alone");
    assert!(t.store.run_dir(&record.id).exists());
}

#[test]
fn an_owned_record_names_its_owner_from_the_start() {
    let t = TempStore::new("owned");
    let mut new = named("web");
    new.owned = true;
    new.config.remove = true;
    let record = t.store.create(new).unwrap();
    assert_eq!(record.state.supervisor_pid, std::process::id() as i32);
    assert!(record.owner_alive());
    assert!(!record.is_abandoned());
    let mut dead = t.store.get("web").unwrap();
    let (pid, start) = dead_process();
    dead.state.supervisor_pid = pid;
    dead.state.supervisor_start_time = start;
    assert!(!dead.owner_alive());
    assert!(dead.is_abandoned());
    dead.config.remove = false;
    assert!(!dead.is_abandoned(), "only --rm containers are abandoned");
    assert_eq!(t.store.create(named("db")).unwrap().state.supervisor_pid, 0);
}

fn running(pid: i32, start: u64) -> Record {
    Record {
        id: id_with("1"),
        name: "web".to_string(),
        created: at(1),
        config: RunConfig::new("busybox", &["top"]),
        state: State {
            status: Status::Running,
            pid,
            pid_start_time: start,
            ..State::default()
        },
    }
}

#[test]
fn effective_status_does_not_trust_a_dead_or_reused_pid() {
    let me = std::process::id() as i32;
    let my_start = process_start_time(me).unwrap();

    let alive = running(me, my_start);
    assert_eq!(alive.effective_status(), Status::Running);
    assert_eq!(alive.effective_state(), alive.state);

    let (dead, dead_start) = dead_process();
    let gone = running(dead, dead_start);
    let state = gone.effective_state();
    assert_eq!(state.status, Status::Exited);
    assert_eq!(state.pid, 0);
    assert_eq!(state.exit_code, UNKNOWN_EXIT_CODE);

    // Our PID, but not the process that was recorded.
    let reused = running(me, my_start + 1);
    assert_eq!(reused.effective_status(), Status::Exited);

    // The container is gone but its supervisor is alive and about to
    // record the exit: still running until it does.
    let mut supervised = running(dead, dead_start);
    supervised.state.supervisor_pid = me;
    supervised.state.supervisor_start_time = my_start;
    assert_eq!(supervised.effective_status(), Status::Running);
    supervised.state.supervisor_start_time = my_start + 1;
    assert_eq!(supervised.effective_status(), Status::Exited);

    let mut paused = running(dead, dead_start);
    paused.state.status = Status::Paused;
    paused.state.error = format!("{CLEANUP_FAILED}: could not remove the cgroup");
    assert_eq!(paused.effective_status(), Status::Dead);

    let mut recorded = running(dead, dead_start);
    recorded.state.exit_code = 137;
    assert_eq!(recorded.effective_state().exit_code, 137);

    // Stopped states are taken as stored, whatever the PID says.
    let mut exited = running(me, my_start);
    exited.state.status = Status::Exited;
    assert_eq!(exited.effective_status(), Status::Exited);
}

#[test]
fn a_record_of_the_previous_format_is_read() {
    let t = TempStore::new("previous");
    let record = t.store.create(named("web")).unwrap();
    // The previous version wrote image, command and ephemeral beside the
    // configuration, and the address as text.
    let config = serde_json::json!({
        "id": record.id,
        "name": "web",
        "image": "busybox",
        "command": ["sh"],
        "created": "2025-11-29T18:00:00Z",
        "config": record.config,
        "ephemeral": false,
    });
    fs::write(t.store.config_path(&record.id), config.to_string()).unwrap();
    let state = serde_json::json!({"status": "exited", "ip": "172.29.0.2", "exit_code": 3});
    fs::write(t.store.state_path(&record.id), state.to_string()).unwrap();
    let read = t.store.get("web").unwrap();
    assert_eq!(read.config, record.config);
    assert_eq!(read.image(), "busybox");
    assert_eq!(read.state.ip, Some(std::net::Ipv4Addr::new(172, 29, 0, 2)));
    assert_eq!(read.state.links, None);
    assert_eq!(read.state.exit_code, 3);
}
