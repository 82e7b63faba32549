//! `keygate man`: roff man pages, generated from the clap definition.

use std::path::Path;

use clap::CommandFactory;

/// The man page of `keygate` on stdout, or with `out` one page per command written there
/// (`keygate.1`, `keygate-serve.1`, `keygate-repo-grant.1`, …).
pub fn run(out: Option<&Path>) -> Result<Option<String>, String> {
    let cli = super::Cli::command();
    match out {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|_| clap_mangen::generate_to(cli, dir))
            .map(|_| None)
            .map_err(|e| format!("man pages to {}: {e}", dir.display())),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cli)
                .render(&mut page)
                .map_err(|e| e.to_string())?;
            Ok(Some(String::from_utf8_lossy(&page).trim_end().to_string()))
        }
    }
}
