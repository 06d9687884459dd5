use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// Each request's path and `Authorization` header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A schema registry on loopback answering each path from `routes` (status, body), recording
/// each request's path and `Authorization` header.
struct Server {
    url: String,
    seen: Seen,
}

fn serve(routes: Vec<(&'static str, u16, &'static str)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let path = first.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or(line.strip_prefix("Authorization: "))
                {
                    auth = Some(v.trim().to_owned());
                }
            }
            log.lock().unwrap().push((path.clone(), auth));
            let (status, body) = routes
                .iter()
                .find(|(p, _, _)| *p == path)
                .map_or((404, r#"{"error_code":40403}"#), |(_, s, b)| (*s, *b));
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).unwrap();
        }
    });
    Server { url, seen }
}

fn client(url: &str, user: Option<&str>) -> RegistryClient {
    RegistryClient::new(&RegistrySection {
        url: Some(url.to_owned()),
        username: user.map(str::to_owned),
        password: user.map(|_| "s3cret".to_owned()),
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

#[test]
fn a_schema_by_id_with_basic_authentication() {
    let s = serve(vec![(
        "/schemas/ids/7",
        200,
        r#"{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}"}"#,
    )]);
    let mut c = client(&format!("{}/", s.url), Some("lw"));
    let text = c.schema(7).unwrap();
    assert_eq!(text, r#"{"type":"record","name":"R","fields":[]}"#);
    let seen = s.seen.lock().unwrap().clone();
    // base64("lw:s3cret")
    assert_eq!(
        seen,
        vec![(
            "/schemas/ids/7".to_owned(),
            Some("Basic bHc6czNjcmV0".to_owned())
        )]
    );
    assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
}

#[test]
fn unknown_unavailable_and_unsupported_are_told_apart() {
    let s = serve(vec![
        ("/schemas/ids/2", 500, r#"{"error_code":50001}"#),
        (
            "/schemas/ids/3",
            200,
            r#"{"schemaType":"PROTOBUF","schema":"syntax = \"proto3\";"}"#,
        ),
        (
            "/schemas/ids/4",
            200,
            r#"{"schema":"{}","references":[{"name":"x","subject":"s","version":1}]}"#,
        ),
        ("/schemas/ids/5", 200, r#"<html>proxy login</html>"#),
    ]);
    let mut c = client(&s.url, None);
    assert!(matches!(c.schema(1), Err(SchemaFetchError::NotFound(_))));
    assert!(matches!(c.schema(2), Err(SchemaFetchError::Unavailable(_))));
    assert!(matches!(c.schema(3), Err(SchemaFetchError::Unsupported(_))));
    assert!(matches!(c.schema(4), Err(SchemaFetchError::Unsupported(_))));
    assert!(matches!(c.schema(5), Err(SchemaFetchError::Unavailable(_))));
    // A failure is answered from memory for a second: one request, not one per message.
    assert!(matches!(c.schema(2), Err(SchemaFetchError::Unavailable(_))));
    let asked_2 = s
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/schemas/ids/2")
        .count();
    assert_eq!(asked_2, 1);
}

#[test]
fn no_registry_listening_is_unavailable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = client(&format!("http://127.0.0.1:{port}"), None);
    assert!(matches!(c.schema(1), Err(SchemaFetchError::Unavailable(_))));
}
