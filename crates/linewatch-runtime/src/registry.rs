//! A client of a Confluent-compatible schema registry, the [`SchemaSource`] of the Avro
//! formats: `GET <url>/schemas/ids/<id>` answers `{"schema": "<Avro schema as JSON text>"}`
//! (plus `schemaType` for Protobuf and JSON Schema, and `references`), as documented in the
//! Confluent Schema Registry API reference. HTTP basic authentication with
//! `decode.registry.username` / `password`; `https://` through the system's TLS library.
//!
//! The call blocks the consumer loop for at most `decode.registry.timeout`, once per schema id
//! (the decoder caches what it got). A failed call is remembered for one second, so a flood of
//! messages of one id while the registry is down costs one call a second, not one a message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use linewatch_window::{SchemaFetchError, SchemaSource};
use serde::Deserialize;

use crate::config::RegistrySection;

/// How long a failed fetch is answered from memory.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The registry's answer to `GET /schemas/ids/<id>`.
#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// Fetches Avro schemas by id from a schema registry.
pub struct RegistryClient {
    base: String,
    authorization: Option<String>,
    agent: ureq::Agent,
    failed: HashMap<u32, (Instant, SchemaFetchError)>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials.
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("authenticated", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for `cfg` (checked by the config: `url` set, `http://` or `https://`).
    ///
    /// # Errors
    /// `url` unset.
    pub fn new(cfg: &RegistrySection) -> anyhow::Result<Self> {
        let base = cfg
            .url
            .as_deref()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "decode.registry.url is not set: the avro formats read their schemas from a \
                     schema registry"
                )
            })?
            .trim_end_matches('/')
            .to_owned();
        let authorization = cfg.username.as_ref().map(|user| {
            let pair = format!("{user}:{}", cfg.password.as_deref().unwrap_or_default());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .build(),
            )
            .build()
            .into();
        tracing::info!(registry = %base, authenticated = authorization.is_some(),
            "Avro schemas come from this schema registry (fetched by id, on first use)");
        Ok(Self {
            base,
            authorization,
            agent,
            failed: HashMap::new(),
        })
    }

    /// Registers `schema` (Avro, as JSON text) under `subject` (`<topic>-value` in the
    /// usual topic-name strategy) and returns its id, as a producer does before writing
    /// (`POST /subjects/<subject>/versions`); `linewatch simulate` uses it.
    ///
    /// # Errors
    /// The registry unreachable, or refusing the schema (the error has its answer).
    pub fn register(&self, subject: &str, schema: &str) -> anyhow::Result<u32> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let mut req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req
            .send(body.as_str())
            .map_err(|e| anyhow::anyhow!("registering a schema at {url}: {e}"))?;
        let answer: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
        answer
            .get("id")
            .and_then(serde_json::Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| anyhow::anyhow!("{url} answered {answer} without a schema id"))
    }

    fn fetch(&self, id: u32) -> Result<String, SchemaFetchError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let mut req = self.agent.get(&url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => {
                return Err(SchemaFetchError::NotFound(format!("{url}: HTTP 404")));
            }
            Err(ureq::Error::StatusCode(code)) => {
                return Err(SchemaFetchError::Unavailable(format!("{url}: HTTP {code}")));
            }
            Err(e) => return Err(SchemaFetchError::Unavailable(format!("{url}: {e}"))),
        };
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| SchemaFetchError::Unavailable(format!("{url}: reading the body: {e}")))?;
        let answer: SchemaById = serde_json::from_str(&body).map_err(|e| {
            SchemaFetchError::Unavailable(format!("{url}: not a schema registry answer: {e}"))
        })?;
        match answer.schema_type.as_deref() {
            None | Some("AVRO") => {}
            Some(other) => {
                return Err(SchemaFetchError::Unsupported(format!(
                    "a {other} schema, not Avro"
                )));
            }
        }
        if !answer.references.is_empty() {
            return Err(SchemaFetchError::Unsupported(
                "schema references are not supported".into(),
            ));
        }
        Ok(answer.schema)
    }
}

impl SchemaSource for RegistryClient {
    fn schema(&mut self, id: u32) -> Result<String, SchemaFetchError> {
        if let Some((at, e)) = self.failed.get(&id)
            && at.elapsed() < RETRY_AFTER
        {
            return Err(e.clone());
        }
        match self.fetch(id) {
            Ok(s) => {
                self.failed.remove(&id);
                tracing::info!(id, registry = %self.base, "fetched an Avro schema");
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(id, registry = %self.base, error = %e, "schema registry");
                self.failed.insert(id, (Instant::now(), e.clone()));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
