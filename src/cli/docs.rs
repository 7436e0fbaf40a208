//! `ferry completions SHELL` and `ferry man`: shell completions and man pages generated from
//! the same clap definitions as `--help`, so they never drift from the flags.

use std::path::PathBuf;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use ferry::{Error, Result};

const COMPLETION_EXAMPLES: &str = "\
Examples:
  ferry completions bash > ~/.local/share/bash-completion/completions/ferry
  ferry completions zsh > \"${fpath[1]}/_ferry\"
  ferry completions fish > ~/.config/fish/completions/ferry.fish";

const MAN_EXAMPLES: &str = "\
Examples:
  ferry man | man -l -
  ferry man --dir /usr/local/share/man/man1     # ferry.1 and ferry-<command>.1";

#[derive(Args)]
#[command(after_help = COMPLETION_EXAMPLES)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Args)]
#[command(after_help = MAN_EXAMPLES)]
pub struct ManArgs {
    /// Write ferry.1 and one page per command (ferry-copy.1, ...) into this directory instead
    /// of printing ferry.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ferry", &mut out);
    super::write_stdout(&out)
}

pub fn man(args: ManArgs) -> Result<()> {
    let cmd = super::Cli::command();
    let failed = |path: PathBuf| {
        move |e: std::io::Error| Error::Output {
            path,
            reason: e.to_string(),
        }
    };
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(failed(dir.clone()))?;
            clap_mangen::generate_to(cmd, &dir).map_err(failed(dir.clone()))
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(failed("<stdout>".into()))?;
            super::write_stdout(&out)
        }
    }
}
