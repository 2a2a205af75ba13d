//! What a container takes from its image's config, with Docker's rules:
//! `Env` under `-e`, `WorkingDir` under `-w`, `User` under `-u`, the
//! `StopSignal`, and the command made of `Entrypoint` and `Cmd`.

use crate::engine::images::Image;
use crate::engine::runtime::RunConfig;

/// The run's command from the image and the run's own words:
/// `--entrypoint` replaces the image's Entrypoint *and* drops its Cmd
/// (`--entrypoint ""` clears both); a command given after the image
/// replaces only Cmd. None when nothing is left to run.
// ANCHOR: command
pub fn command(
    image_entrypoint: &[String],
    image_cmd: &[String],
    entrypoint_flag: Option<&str>,
    run_args: &[String],
) -> Option<Vec<String>> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => Vec::new(),
        Some(flag) => vec![flag.to_string()],
        None => image_entrypoint.to_vec(),
    };
    let cmd = if !run_args.is_empty() {
        run_args.to_vec()
    } else if entrypoint_flag.is_some() {
        Vec::new()
    } else {
        image_cmd.to_vec()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    (!argv.is_empty()).then_some(argv)
}
// ANCHOR_END: command

/// Fills `config` from `image`: what the run left open takes the image's
/// value; the record then holds the result, so a restart is the same.
pub fn apply(config: &mut RunConfig, image: &Image) -> Result<(), String> {
    let empty = Default::default();
    let c = image.config.config().as_ref().unwrap_or(&empty);
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    config.command = command(
        &list(c.entrypoint()),
        &list(c.cmd()),
        config.entrypoint.as_deref(),
        &config.command,
    )
    .ok_or_else(|| {
        format!(
            "no command specified: image {} has no Entrypoint or Cmd; give one after the image's name",
            config.image
        )
    })?;
    let mut env: Vec<(String, String)> = list(c.env())
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (key, value) in std::mem::take(&mut config.env) {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
    config.env = env;
    if config.workdir.is_none() {
        config.workdir = c.working_dir().clone().filter(|d| !d.is_empty());
    }
    if config.user.is_none() {
        config.user = c.user().clone().filter(|u| !u.is_empty());
    }
    config.stop_signal = c.stop_signal().clone().filter(|s| !s.is_empty());
    config.exposed_ports = c.exposed_ports().clone().unwrap_or_default();
    config.image_id = Some(image.id().to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::command;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_in_docker() {
        let ep = words("/entry.sh --flag");
        let cmd = words("serve --port 80");
        let run = |flag: Option<&str>, args: &str| command(&ep, &cmd, flag, &words(args));
        assert_eq!(
            run(None, ""),
            Some(words("/entry.sh --flag serve --port 80"))
        );
        assert_eq!(run(None, "debug"), Some(words("/entry.sh --flag debug")));
        // --entrypoint drops the image's Cmd too.
        assert_eq!(run(Some("sh"), ""), Some(words("sh")));
        assert_eq!(run(Some("sh"), "-c true"), Some(words("sh -c true")));
        assert_eq!(run(Some(""), "echo hi"), Some(words("echo hi")));
        assert_eq!(run(Some(""), ""), None);
        // No Entrypoint: Cmd alone, or the run's words alone.
        assert_eq!(command(&[], &words("sh"), None, &[]), Some(words("sh")));
        assert_eq!(command(&[], &[], None, &[]), None);
    }
}
