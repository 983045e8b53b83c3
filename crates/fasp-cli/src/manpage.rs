//! `fasp manpage [--out DIR]` (hidden): man pages generated from the clap definitions, one for
//! the command (`fasp.1`) and one per subcommand (`fasp-transfer.1`, `fasp-node-upload-setup.1`,
//! ...). The repository keeps a copy in `docs/man/`, which a test keeps current.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `fasp manpage`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to write the pages into (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
}

/// Write the pages of `command` into `args.out` and list them on stdout.
pub fn run(args: Args, command: clap::Command) -> ExitCode {
    match write_pages(command, &args.out) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fasp manpage: {e}");
            ExitCode::from(1)
        }
    }
}

/// Render the page of `command` and of each of its visible subcommands (recursively) into
/// `dir`; the paths written, sorted.
pub fn write_pages(command: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    render_tree(command, dir, &mut written)?;
    written.sort();
    Ok(written)
}

fn render_tree(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_tree(sub.clone(), dir, written)?;
    }
    let man = clap_mangen::Man::new(command);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| format!("cannot render {}: {e}", path.display()))?;
    std::fs::write(&path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    written.push(path);
    Ok(())
}
