//! Broker outages ridden out (issue 12, case 2). `linewatch run` talks to a tansu broker of
//! its own through a TCP proxy (the broker advertises the proxy's address, so every client
//! connection passes through it). Mid-stream the proxy drops every connection and refuses
//! new ones for `LINEWATCH_TEST_OUTAGE_S` seconds (default 30; `scripts/chaos.sh` runs 180).
//! Before, a 30 s outage killed the pipeline ("alert not acknowledged by the broker ...
//! MessageTimedOut") while `/healthz` said 200 and the lag gauge said 0. Now the process
//! waits, says the broker is unreachable (`/readyz` 503, `linewatch_broker_up 0`) while
//! staying alive (`/healthz` 200), and afterwards every closed window is in Parquet once,
//! complete, and every alert is on the topic once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // figures go to stdout

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::run::*;

/// The test's own broker, killed when dropped.
struct Tansu(Child);

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tansu(listen: u16, advertised: u16, log: &std::path::Path) -> Tansu {
    let child = Command::new("tansu")
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{listen}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("tansu on PATH (scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Tansu(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_ridden_out_and_reported() {
    let outage = Duration::from_secs(
        std::env::var("LINEWATCH_TEST_OUTAGE_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let dir = common::workdir();
    let (broker_port, proxy_port, http_port) = (free_port(), free_port(), free_port());
    let _tansu = start_tansu(broker_port, proxy_port, &dir.path().join("tansu.log"));
    let proxy = Proxy::start_on(
        ([127, 0, 0, 1], proxy_port).into(),
        ([127, 0, 0, 1], broker_port).into(),
    )
    .await;
    let brokers = proxy.addr().to_string();
    let http: SocketAddr = ([127, 0, 0, 1], http_port).into();

    let t = topics_on(&brokers, "outage").await;
    let (toml, out, name) = write_pipeline(dir.path(), "outage", &t);
    let log = dir.path().join("linewatch.log");

    let (mut sim, mut expected, r1, _) = warmed_up();
    // One message per batch: tansu serves fetches only from batch starts, and the consumer
    // resumes from its position after the outage.
    let p = common::producer_unbatched_on(&brokers);
    common::produce(&p, &t.readings, &r1).await;
    let listen = http.to_string();
    let env = [
        ("LINEWATCH__HTTP__LISTEN", listen.as_str()),
        ("LINEWATCH__KAFKA__ACK_TIMEOUT", "5s"),
    ];
    let mut child = spawn_with(&brokers, &toml, &log, &env);
    wait_for("the first model", &log, Duration::from_secs(300), || {
        model_exists(&out, &name)
    });

    let mut until = sim.warmup_end_ms();
    let mut last_events = Vec::new();
    let mut chunk = |expected: &mut BTreeMap<_, _>| {
        until += 1_800_000;
        last_events = sim.next_events(until);
        messages(&last_events, expected).0
    };
    for _ in 0..3 {
        let c = chunk(&mut expected);
        common::produce(&p, &t.readings, &c).await;
    }
    // The outage, while the faulty hours are being scored and their alerts sent.
    proxy.cut();
    let cut_at = Instant::now();
    wait_for("/readyz to report the outage", &log, outage, || {
        http_get(http, "/readyz").is_some_and(|(code, body)| code == 503 && body.contains("broker"))
    });
    let (code, _) = http_get(http, "/healthz").unwrap();
    assert_eq!(code, 200, "alive while it waits for the broker");
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "linewatch_broker_up 0"),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|l| l == "linewatch_consumer_lag_messages 0"),
        "lag is unknown during an outage, not 0"
    );
    while cut_at.elapsed() < outage {
        assert!(
            child.try_wait().unwrap().is_none(),
            "linewatch exited during the outage; log:\n{}",
            tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    proxy.restore();
    for _ in 0..3 {
        let c = chunk(&mut expected);
        common::produce(&p, &t.readings, &c).await;
    }
    let expected = closed_by_watermark(&expected, &last_events);
    wait_for_windows(&out, &log, expected.len());
    wait_for("/readyz to recover", &log, Duration::from_secs(60), || {
        http_get(http, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert!(child.try_wait().unwrap().is_none(), "{}", tail(&log));
    terminate(child, &log);

    let c = census(&out, &expected);
    let (on_topic, repeated) = repeated_alerts_on(&brokers, &t.alerts);
    let mut figures = c.to_json();
    figures["scenario"] = "broker_outage".into();
    figures["outage_s"] = outage.as_secs().into();
    figures["alerts_on_topic"] = on_topic.into();
    figures["alerts_repeated"] = repeated.into();
    println!("CHAOS {figures}");
    check_windows(&out, &expected);
    let alerts = check_alert_topic_on(&brokers, &t.alerts);
    assert!(
        alerts.iter().any(|a| a["state"] == "open"),
        "{}",
        tail(&log)
    );
    assert_eq!(
        common::parquet_rows(out.join("alerts")),
        alerts.len(),
        "alerts topic and alerts/ Parquet agree"
    );
}

/// A broker never reached (a wrong address, a broker not up yet) is reported the same way:
/// `/readyz` 503 and `linewatch_broker_up 0` while `/healthz` stays 200, and the process keeps
/// trying instead of exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_never_reached_is_reported() {
    let dir = common::workdir();
    let t = Topics {
        readings: "never-readings".into(),
        inspections: "never-inspections".into(),
        alerts: "never-alerts".into(),
        dlq: "never-readings.dlq".into(),
    };
    let out = dir.path().join("out");
    let toml = dir.path().join("pipeline.toml");
    std::fs::write(&toml, pipeline_toml("never", &t, &out)).unwrap();
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listen = http.to_string();
    let log = dir.path().join("linewatch.log");
    // Nothing listens on this port.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut child = spawn_with(
        &nowhere,
        &toml,
        &log,
        &[("LINEWATCH__HTTP__LISTEN", listen.as_str())],
    );
    wait_for(
        "/readyz to report the broker",
        &log,
        Duration::from_secs(60),
        || {
            http_get(http, "/readyz")
                .is_some_and(|(code, body)| code == 503 && body.contains("broker"))
        },
    );
    assert_eq!(http_get(http, "/healthz").unwrap().0, 200);
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    assert!(
        metrics.lines().any(|l| l == "linewatch_broker_up 0"),
        "{metrics}"
    );
    assert!(child.try_wait().unwrap().is_none(), "{}", tail(&log));
    terminate(child, &log);
}
