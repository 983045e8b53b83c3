//! `fasp`: see the library's documentation and `docs/cli.md`.

fn main() -> std::process::ExitCode {
    fasp_cli::main()
}
