//! The files of the Terraform working directory that tfrollback reads: the `*.tf` files and
//! `tfrollback.hcl`. The parsing itself is pure (`model::config`); this module reads the bytes.

use std::path::Path;

use crate::model::config::{ConfigError, Configuration, TOOL_CONFIG_FILE};

/// The variables the `*.tf` files of `dir` declare, and `tfrollback.hcl`.
pub(crate) fn configuration(dir: &Path) -> Result<Configuration, ConfigError> {
    let tool_path = dir.join(TOOL_CONFIG_FILE);
    let tool = match std::fs::read_to_string(&tool_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ConfigError::Read {
                path: tool_path.display().to_string(),
                source,
            });
        }
    };
    Configuration::from_files(&read_tf_files(dir)?, tool.as_deref())
}

/// The `*.tf` files of a directory, sorted by name, with their text.
pub(crate) fn read_tf_files(dir: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "tf") && path.is_file() {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}
