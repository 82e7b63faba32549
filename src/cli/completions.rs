//! `keygate completions SHELL`: the shell's completion script, generated from the clap definition.

use clap::CommandFactory;
use clap_complete::Shell;

/// The completion script for `shell`, on stdout.
pub fn run(shell: Shell) -> Result<Option<String>, String> {
    let mut cli = super::Cli::command();
    clap_complete::generate(shell, &mut cli, "keygate", &mut std::io::stdout());
    Ok(None)
}
