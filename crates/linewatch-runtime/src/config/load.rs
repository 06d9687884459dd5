//! Loading: the pipeline file, then the environment layered on top (see the module docs).

use std::path::Path;

use super::{ConfigError, PipelineConfig};

impl PipelineConfig {
    /// Reads a pipeline file and applies the process environment on top.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = format!("pipeline file {}", path.display());
        Self::from_toml_with_env(&text, &origin, std::env::vars())
    }

    /// Parses TOML text, applies `env` (pairs of name and value) on top, and validates;
    /// `origin` names the text in errors (`pipeline file X`).
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        apply_env(&mut tree, env)?;
        let cfg: PipelineConfig =
            toml::Value::Table(tree)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Applies `LINEWATCH__A__B=v` (and `LINEWATCH_BROKERS`) to the parsed tree.
fn apply_env(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut pairs: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k == "LINEWATCH_BROKERS" || k.starts_with("LINEWATCH__"))
        .collect();
    pairs.sort();
    for (var, value) in pairs {
        let path: Vec<String> = if var == "LINEWATCH_BROKERS" {
            vec!["kafka".into(), "brokers".into()]
        } else {
            let parts: Vec<&str> = var["LINEWATCH__".len()..].split("__").collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Env {
                    var,
                    message: "empty path segment".into(),
                });
            }
            let in_properties = parts.len() == 3
                && parts[0].eq_ignore_ascii_case("kafka")
                && parts[1].eq_ignore_ascii_case("properties");
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let lower = p.to_ascii_lowercase();
                    if in_properties && i == 2 {
                        lower.replace('_', ".")
                    } else {
                        lower
                    }
                })
                .collect()
        };
        let in_properties = path.len() == 3 && path[0] == "kafka" && path[1] == "properties";
        let parsed = if in_properties || path.last().is_some_and(|k| k == "brokers") {
            toml::Value::String(value.clone())
        } else {
            parse_scalar(&value)
        };
        let mut node = &mut *tree;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                node.insert(key.clone(), parsed.clone());
            } else {
                let entry = node
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                node = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(ConfigError::Env {
                            var,
                            message: format!("`{key}` is not a section"),
                        });
                    }
                };
            }
        }
    }
    Ok(())
}

/// A value from the environment as TOML: `3`, `true`, `[64, 64]`, `"x"`, else a plain string.
fn parse_scalar(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}
