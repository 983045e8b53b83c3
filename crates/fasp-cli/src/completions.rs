//! `fasp completions SHELL`: the shell completion script, generated from the clap definitions.

use std::io::Write;
use std::process::ExitCode;

use clap_complete::Shell;

/// Arguments of `fasp completions`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Install, for example:\n  \
    bash: fasp completions bash > ~/.local/share/bash-completion/completions/fasp\n  \
    zsh:  fasp completions zsh > \"${fpath[1]}/_fasp\"\n  \
    fish: fasp completions fish > ~/.config/fish/completions/fasp.fish")]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print the completion script of `command` (named by its own name) for `args.shell`.
pub fn run(args: Args, mut command: clap::Command) -> ExitCode {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fasp completions: cannot write the script to stdout: {e}");
            ExitCode::from(1)
        }
    }
}
