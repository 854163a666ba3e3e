//! `check-config --config FILE`.

use super::{CliError, ConfigArg};

pub fn check_config(arg: &ConfigArg) -> Result<(), CliError> {
    let config =
        crate::config::load(&arg.config).map_err(|err| CliError::Invalid(err.to_string()))?;
    println!(
        "{}: ok ({} interface(s), mode {})",
        arg.config.display(),
        config.interfaces.len(),
        config.mode.as_str()
    );
    Ok(())
}
