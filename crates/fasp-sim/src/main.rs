//! `ascp-sim`: the ascp emulator's binary. Everything is in the `fasp_sim` library.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(fasp_sim::main_with_args(args));
}
