//! A small front end to the builder for the benchmark (scripts/bench-build.sh)
//! until `mini-docker build` exists: it builds with the test suite's chroot
//! step runner (tests/build_support/runner.rs), not the lab's runtime.
//!
//!   lab-build --store DIR --import-tree NAME TREE      an image of a directory
//!   lab-build --store DIR [-t NAME]... [-f FILE] [--build-arg K=V]...
//!             [--target STAGE] [--no-cache] [--quiet] CONTEXT

#[path = "../tests/build_support/runner.rs"]
mod runner;

use std::path::PathBuf;
use std::process::ExitCode;

use container_lab::engine::build::{self, BuildContext, BuildEvent, BuildOptions, Builder};
use container_lab::engine::images::{build_from_rootfs, ImageStore, Reference, RootfsImage};

fn usage() -> ExitCode {
    eprintln!("usage: lab-build --store DIR [--import-tree NAME TREE | [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] [--no-cache] [--quiet] CONTEXT]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut store, mut tags, mut file, mut build_args) = (None, Vec::new(), None, Vec::new());
    let (mut target, mut no_cache, mut quiet, mut context, mut import) =
        (None, false, false, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--store" => store = args.next().map(PathBuf::from),
            "-t" => tags.extend(args.next()),
            "-f" => file = args.next().map(PathBuf::from),
            "--build-arg" => {
                if let Some((k, v)) = args.next().as_deref().and_then(|a| a.split_once('=')) {
                    build_args.push((k.to_string(), v.to_string()));
                }
            }
            "--target" => target = args.next(),
            "--no-cache" => no_cache = true,
            "--quiet" => quiet = true,
            "--import-tree" => import = args.next().zip(args.next()),
            _ if context.is_none() && !arg.starts_with('-') => context = Some(PathBuf::from(arg)),
            _ => return usage(),
        }
    }
    let Some(store_dir) = store else {
        return usage();
    };
    let store = match ImageStore::open(&store_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab-build: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some((name, tree)) = import {
        let result = Reference::parse(&name)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let config = RootfsImage {
                    env: vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ],
                    cmd: vec!["sh".into()],
                    created_by: format!("lab-build --import-tree {tree}"),
                    ..RootfsImage::default()
                };
                build_from_rootfs(&store, std::path::Path::new(&tree), &r, &config)
                    .map_err(|e| e.to_string())
            });
        return match result {
            Ok(image) => {
                println!("{}", image.id());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lab-build: {e}");
                ExitCode::from(1)
            }
        };
    }
    let Some(context) = context else {
        return usage();
    };
    let file = file.unwrap_or_else(|| context.join("Dockerfile"));
    let result = (|| -> Result<String, String> {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = BuildOptions {
            dockerfile: build::parse(&text, &name).map_err(|e| e.to_string())?,
            context: BuildContext::open(&context)?,
            tags: tags
                .iter()
                .map(|t| Reference::parse(t).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?,
            build_args,
            target,
            no_cache,
            platform: None,
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.parse().ok()),
        };
        let events = |e: BuildEvent| {
            if quiet {
                return;
            }
            match e {
                BuildEvent::Step {
                    stage,
                    number,
                    total,
                    instruction,
                } => {
                    println!("#{stage} [{number}/{total}] {instruction}")
                }
                BuildEvent::Cached { .. } => println!("CACHED"),
                BuildEvent::Warning(w) => eprintln!("{w}"),
                BuildEvent::Tagged { reference } => println!("naming to {reference}"),
                BuildEvent::Built { id } => println!("writing image {id}"),
                _ => {}
            }
        };
        let runner = runner::ChrootRunner { quiet };
        let builder = Builder {
            store: &store,
            runner: &runner,
            events: &events,
            images: None,
            cancel: None,
        };
        builder
            .build(&options)
            .map(|b| b.id)
            .map_err(|e| e.to_string())
    })();
    match result {
        Ok(id) => {
            if quiet {
                println!("{id}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lab-build: {e}");
            ExitCode::from(1)
        }
    }
}
