//! Helpers shared by the test modules.

use fasp_spec::{AscpCommand, RenderOptions, TransferSpec};
use serde_json::Value;

/// Reads a spec from a JSON value, panicking with the error's message.
pub(crate) fn spec(value: Value) -> TransferSpec {
    TransferSpec::from_json_value(value).unwrap_or_else(|e| panic!("{e}"))
}

/// The command's arguments as strings, with the path of a generated file list replaced by
/// `<LIST>` so that tables can spell argv exactly.
pub(crate) fn args(command: &AscpCommand) -> Vec<String> {
    let lists: Vec<String> = command
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    command
        .args
        .iter()
        .map(|a| {
            let mut arg = a.to_str().expect("UTF-8 argument").to_owned();
            for list in &lists {
                arg = arg.replace(list.as_str(), "<LIST>");
            }
            arg
        })
        .collect()
}

/// Renders with default options.
pub(crate) fn render(value: Value) -> AscpCommand {
    spec(value)
        .render(&RenderOptions::new())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The names of the command's environment variables.
pub(crate) fn env_names(command: &AscpCommand) -> Vec<&str> {
    command.env.keys().map(String::as_str).collect()
}
