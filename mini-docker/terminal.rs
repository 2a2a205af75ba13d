//! `-t`: the container's side of a pseudo-terminal, with our terminal in
//! raw mode relaying both ways (see `lab::pty`).

use std::path::PathBuf;

use lab::runtime::config::RunConfig;
use lab::runtime::exec::ExecRequest;

pub fn exec_with_terminal(
    _pid: i32,
    _config: &RunConfig,
    _cgroup_paths: &[PathBuf],
    _request: ExecRequest,
    _interactive: bool,
) -> anyhow::Result<i32> {
    anyhow::bail!("exec -t is not built yet")
}

pub fn run_with_terminal(
    _dirs: &lab::state::LabDirs,
    _id: &str,
    _config: &RunConfig,
    _explain: lab::runtime::Explain,
) -> anyhow::Result<i32> {
    anyhow::bail!("run -t is not built yet")
}
