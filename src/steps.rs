//! The few lines every container chapter would otherwise repeat: run a
//! step of the lab's own code inside the container, show a command and
//! what it printed, name the container. They sit at the chapters' edge, so
//! they speak anyhow like the chapters do.

use crate::container::Container;
use crate::narrate::Narrator;

/// Runs `work` inside the container (see `Container::run_inside`) and turns
/// its failure into an error here, with the message it printed inside.
pub fn inside(
    container: &Container,
    work: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let code = container.run_inside(|| match work() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    })?;
    anyhow::ensure!(
        code == 0,
        "a step inside the container failed (exit code {code})"
    );
    Ok(())
}

/// Shows `container $ ARGV`, runs it inside, and shows what it printed,
/// and its exit code when that is not 0.
pub fn show(book: &Narrator, container: &Container, argv: &[&str]) -> anyhow::Result<i32> {
    book.inside(argv);
    let (code, text) = container.exec_output(argv)?;
    book.output(&text);
    if code != 0 {
        book.say(format!("(exit code {code})"));
    }
    Ok(code)
}

/// `hostname NAME` inside the container's UTS namespace.
pub fn set_hostname(container: &Container, hostname: &str) -> anyhow::Result<()> {
    let hostname = hostname.to_string();
    inside(container, move || Ok(nix::unistd::sethostname(&hostname)?))
}
