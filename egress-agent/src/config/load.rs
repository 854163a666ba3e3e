//! Reading the config file: TOML syntax and types first, then meaning (`validate`).

use std::path::{Path, PathBuf};

use super::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {location}{message}")]
    Syntax {
        file: PathBuf,
        location: String,
        message: String,
    },
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse_owned(path, text)
}

/// Parses and validates config text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_owned(path, text.to_owned())
}

/// The prefix arrays are read first, straight from the text, and blanked in it; `toml` reads
/// the rest, whose line numbers are unchanged.
fn parse_owned(path: &Path, text: String) -> Result<Config, ConfigError> {
    let (text, lists) = super::prefix_arrays::extract(text);
    let mut config: Config =
        toml::from_str(&text).map_err(|err| syntax_error(path, &text, &err))?;
    drop(text);
    for (kind, list) in lists {
        *config.prefix_list_mut(kind) = list;
    }
    super::validate::validate(&config).map_err(|(key, problem)| ConfigError::Invalid {
        file: path.to_owned(),
        key,
        problem,
    })?;
    Ok(config)
}

/// One line: `file: line N: `text`: message` (toml's own message spans several lines).
fn syntax_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let location = err
        .span()
        .map(|span| {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("line {line_no}: `{line}`: ")
        })
        .unwrap_or_default();
    ConfigError::Syntax {
        file: path.to_owned(),
        location,
        message: err.message().trim().replace('\n', " "),
    }
}
