//! A schema registry inside the demo, as the mock cluster is its Kafka: on loopback, in
//! memory, answering the two calls of the Confluent REST API that a producer and linewatch
//! make (`POST /subjects/{subject}/versions`, `GET /schemas/ids/{id}`). Not for production:
//! nothing is stored, no compatibility is checked.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

/// Schemas by id (`id - 1` is the index).
type Schemas = Arc<Mutex<Vec<String>>>;

/// The demo's registry; stops when dropped.
#[derive(Debug)]
pub struct EmbeddedRegistry {
    url: String,
    schemas: Schemas,
    task: tokio::task::JoinHandle<()>,
}

impl EmbeddedRegistry {
    /// Starts on a free loopback port.
    ///
    /// # Errors
    /// No loopback port to bind.
    pub async fn start() -> anyhow::Result<Self> {
        let schemas: Schemas = Arc::default();
        let app = axum::Router::new()
            .route("/schemas/ids/{id}", get(by_id))
            .route("/subjects/{subject}/versions", post(register))
            .with_state(Arc::clone(&schemas));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the demo's schema registry")?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the demo's schema registry stopped");
            }
        });
        Ok(Self { url, schemas, task })
    }

    /// Its base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers `schema` (the same text gets the same id) and returns its id.
    pub fn register(&self, schema: &str) -> u32 {
        add(&self.schemas, schema)
    }
}

impl Drop for EmbeddedRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn add(schemas: &Schemas, schema: &str) -> u32 {
    let mut s = schemas
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let i = match s.iter().position(|x| x == schema) {
        Some(i) => i,
        None => {
            s.push(schema.to_owned());
            s.len() - 1
        }
    };
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

async fn by_id(State(schemas): State<Schemas>, Path(id): Path<u32>) -> (StatusCode, String) {
    let s = schemas
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match id.checked_sub(1).and_then(|i| s.get(i as usize)) {
        Some(text) => (
            StatusCode::OK,
            serde_json::json!({ "schema": text }).to_string(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            r#"{"error_code":40403,"message":"Schema not found"}"#.into(),
        ),
    }
}

async fn register(State(schemas): State<Schemas>, body: String) -> (StatusCode, String) {
    match serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("schema")?.as_str().map(str::to_owned))
    {
        Some(text) => {
            let id = add(&schemas, &text);
            (StatusCode::OK, serde_json::json!({ "id": id }).to_string())
        }
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"error_code":42201,"message":"Invalid schema"}"#.into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linewatch_runtime::config::RegistrySection;
    use linewatch_runtime::registry::RegistryClient;
    use linewatch_window::SchemaSource as _;

    /// The runtime's client registers and fetches against it as against a registry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_runtime_client_registers_and_fetches() {
        let reg = EmbeddedRegistry::start().await.unwrap();
        let cfg = RegistrySection {
            url: Some(reg.url().to_owned()),
            ..RegistrySection::default()
        };
        let (a, b, again, text, missing) = tokio::task::spawn_blocking(move || {
            let mut c = RegistryClient::new(&cfg).unwrap();
            let a = c.register("readings-value", r#""double""#).unwrap();
            let b = c.register("readings-value", r#""long""#).unwrap();
            let again = c.register("other-value", r#""double""#).unwrap();
            (a, b, again, c.schema(b), c.schema(9))
        })
        .await
        .unwrap();
        assert_eq!((a, b, again), (1, 2, 1));
        assert_eq!(text.unwrap(), r#""long""#);
        assert!(matches!(
            missing,
            Err(linewatch_window::SchemaFetchError::NotFound(_))
        ));
        assert_eq!(reg.register(r#""long""#), 2);
    }
}
