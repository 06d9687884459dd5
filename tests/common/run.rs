//! The `linewatch run` process in end-to-end tests: topics, its pipeline file, simulated
//! readings as messages, starting and stopping it, and reading back what it wrote (Parquet
//! and the alert topic) with the checks every such test makes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{
    Array, BooleanArray, Float64Array, StringArray, TimestampMillisecondArray, UInt32Array,
};
use linewatch_sim::{SimConfig, SimEvent};
use linewatch_sink::Location;
use linewatch_tables::scores as S;

pub const WINDOW_MS: i64 = 10_000;
/// `window.allowed_lateness` of [`pipeline_toml`].
pub const LATENESS_MS: i64 = 6_000;

pub struct Topics {
    pub readings: String,
    pub inspections: String,
    pub alerts: String,
    pub dlq: String,
}

pub async fn topics(prefix: &str) -> Topics {
    topics_on(&super::brokers(), prefix).await
}

/// The topics of one test on the broker at `brokers`: readings and inspections (3
/// partitions), alerts and dead letters (1).
pub async fn topics_on(brokers: &str, prefix: &str) -> Topics {
    let base = super::unique(prefix);
    let t = Topics {
        readings: format!("{base}-readings"),
        inspections: format!("{base}-inspections"),
        alerts: format!("{base}-alerts"),
        dlq: format!("{base}-readings.dlq"),
    };
    super::create_topics_on(
        brokers,
        &[
            (&t.readings, 3),
            (&t.inspections, 3),
            (&t.alerts, 1),
            (&t.dlq, 1),
            (&format!("{}.dlq", t.inspections), 1),
        ],
    )
    .await;
    t
}

/// Writes the test pipeline file for `t` into `dir` (a unique pipeline name `<prefix>_...`,
/// output under `dir/out`); returns the file, the output folder and the name.
pub fn write_pipeline(dir: &Path, prefix: &str, t: &Topics) -> (PathBuf, PathBuf, String) {
    let out = dir.join("out");
    let name = super::unique(prefix).replace('-', "_");
    let toml = dir.join("pipeline.toml");
    std::fs::write(&toml, pipeline_toml(&name, t, &out)).unwrap();
    (toml, out, name)
}

pub fn pipeline_toml(name: &str, t: &Topics, out: &Path) -> String {
    pipeline_toml_at(
        name,
        t,
        &out.display().to_string(),
        &out.join("models").display().to_string(),
    )
}

/// [`pipeline_toml`] with `sink.out` and `retrain.models_dir` as written (paths or URLs).
pub fn pipeline_toml_at(name: &str, t: &Topics, out: &str, models: &str) -> String {
    format!(
        r#"
[pipeline]
name = "{name}"
[kafka]
readings_topic = "{r}"
inspections_topic = "{i}"
alerts_topic = "{a}"
[window]
size = "10s"
allowed_lateness = "6s"
channels = ["temp_c", "vib_rms", "pressure_bar", "current_a"]
[model]
hidden = [32, 32]
epochs = 40
patience = 6
[retrain]
every = "1h"
min_windows = 300
models_dir = "{models}"
[sink]
out = "{out}"
max_age = "300ms"
[http]
listen = ""
"#,
        r = t.readings,
        i = t.inspections,
        a = t.alerts,
    )
}

/// The test pipeline with `kafka.rekey` on. tansu 0.6.0 serves a fetch only from the start of
/// a record batch, and the windowers resume inside the re-keyed topic after the SIGKILL, so
/// the re-keying stage's producer is told to write one message per batch here (the
/// pass-through properties reach every client; the consumers ignore producer properties).
pub fn rekey_pipeline(dir: &Path, prefix: &str, t: &Topics) -> (PathBuf, PathBuf, String) {
    let (toml, out, name) = write_pipeline(dir, prefix, t);
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "[kafka]\n",
        &format!(
            "[kafka]\nrekey = true\nrekey_topic = \"{}-rekeyed\"\n",
            t.readings
        ),
    ) + "[kafka.properties]\n\"batch.num.messages\" = \"1\"\n\"linger.ms\" = \"0\"\n";
    std::fs::write(&toml, text).unwrap();
    (toml, out, name)
}

/// Produces each message to partition `i % 3`, without a key: every machine on every
/// partition, as an MQTT bridge with a null key does. Waits for every acknowledgement.
pub async fn produce_spread(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    messages: &[(String, Vec<u8>)],
) {
    for chunk in messages.chunks(5000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for (i, (_, payload)) in chunk.iter().enumerate() {
            let record = rdkafka::producer::FutureRecord::<(), _>::to(topic)
                .partition((i % 3) as i32)
                .payload(payload);
            pending.push(p.send_result(record).map_err(|(e, _)| e).unwrap());
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
}

/// The windows a run makes: (machine, window start) -> its `temp_c` values.
pub type Windows = BTreeMap<(String, i64), Vec<f64>>;

/// The test simulator past its fault-free warm-up, the windows the warm-up makes, and the
/// warm-up's readings and inspections as messages.
pub fn warmed_up() -> (linewatch_sim::Simulator, Windows, Messages, Messages) {
    let mut sim = linewatch_sim::Simulator::new(sim_config()).unwrap();
    let mut expected = BTreeMap::new();
    let warm = sim.next_events(sim.warmup_end_ms());
    let (readings, inspections) = messages(&warm, &mut expected);
    (sim, expected, readings, inspections)
}

/// The event time the simulator starts at (its warm-up's beginning), epoch ms.
pub fn sim_start_ms(sim: &linewatch_sim::Simulator) -> i64 {
    sim.warmup_end_ms() - sim.config().warmup_ms
}

/// The `stopped cleanly` summary line of a run's log.
pub fn stop_summary(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("stopped cleanly"))
        .unwrap_or_else(|| panic!("no stop summary in {}; log:\n{}", log.display(), tail(log)))
        .to_owned()
}

pub fn sim_config() -> SimConfig {
    let mut cfg = SimConfig {
        machines: 6,
        warmup_ms: 3_600_000,
        late_fraction: 0.0,
        seed: 11,
        ..SimConfig::default()
    };
    cfg.faults.severity_min = 1.0;
    cfg.faults.severity_max = 1.0;
    cfg.faults.min_duration_ms = 300_000;
    cfg.faults.max_duration_ms = 600_000;
    cfg.faults.mean_gap_ms = 1_200_000;
    cfg.faults.min_gap_ms = 300_000;
    cfg
}

/// Kafka messages as (key, payload).
pub type Messages = Vec<(String, Vec<u8>)>;
/// A scores row read back: machine, window start and end, n_readings, temp_c mean, anomaly
/// score, model version.
pub type ScoreRow = (String, i64, i64, u32, f64, Option<f64>, Option<String>);

/// Events as Kafka messages, plus the windows they make (machine, window start) -> readings.
pub fn messages(
    events: &[SimEvent],
    windows: &mut BTreeMap<(String, i64), Vec<f64>>,
) -> (Messages, Messages) {
    let mut readings = Vec::new();
    let mut inspections = Vec::new();
    for e in events {
        match e {
            SimEvent::Reading(r) => {
                let start = r.ts_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
                windows
                    .entry((r.machine.to_string(), start))
                    .or_default()
                    .push(r.value("temp_c").unwrap());
                readings.push((r.machine.to_string(), e.to_json().into_bytes()));
            }
            SimEvent::Inspection(i) => {
                inspections.push((i.machine.to_string(), e.to_json().into_bytes()));
            }
        }
    }
    (readings, inspections)
}

pub fn spawn(toml: &Path, log: &Path) -> Child {
    spawn_with(&super::brokers(), toml, log, &[])
}

/// `linewatch run` on the broker at `brokers`, with extra environment (`LINEWATCH__...`
/// overrides), logging at info to `log`.
pub fn spawn_with(brokers: &str, toml: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_linewatch"))
        .args(["run", "--pipeline"])
        .arg(toml)
        .env("LINEWATCH_BROKERS", brokers)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start linewatch run")
}

pub fn terminate(mut child: Child, log: &Path) {
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "linewatch exited with {status} on SIGTERM; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        assert!(Instant::now() < deadline, "no graceful exit within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_for(what: &str, log: &Path, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log tail:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The windows the watermark closes: those ending at or before each machine's newest event
/// time minus the allowed lateness. The rest are still open when the pipeline stops, and a
/// graceful stop must not write them (they would be partial); the next run completes them.
pub fn closed_by_watermark(
    windows: &BTreeMap<(String, i64), Vec<f64>>,
    events: &[SimEvent],
) -> BTreeMap<(String, i64), Vec<f64>> {
    let mut newest: HashMap<String, i64> = HashMap::new();
    for e in events {
        if let SimEvent::Reading(r) = e {
            let t = newest.entry(r.machine.to_string()).or_insert(i64::MIN);
            *t = (*t).max(r.ts_ms);
        }
    }
    windows
        .iter()
        .filter(|((m, start), _)| start + WINDOW_MS <= newest[m] - LATENESS_MS)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Waits until every window the watermark closed is in the scores table.
pub fn wait_for_windows(out: impl Into<Location>, log: &Path, expected: usize) {
    let scores = out.into().join(S::TABLE);
    wait_for(
        "the pipeline to write every closed window",
        log,
        Duration::from_secs(150),
        || super::parquet_rows(&scores) >= expected,
    );
}

/// Whether a complete model version exists under `out/models/<name>` (a folder or an
/// object-store prefix).
pub fn model_exists(out: impl Into<Location>, name: &str) -> bool {
    let root = out.into().join(&format!("models/{name}"));
    linewatch_runtime::model_store::list_versions(&root).is_ok_and(|v| !v.is_empty())
}

/// Every scores row read back: (machine, window start) -> (n_readings, temp mean, score set).
pub fn read_scores(out: impl Into<Location>) -> Vec<ScoreRow> {
    let mut rows = Vec::new();
    for b in linewatch_sink::read_all(out.into().join(S::TABLE)).unwrap() {
        let s = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("column {n}"));
        let machine = s(S::MACHINE)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let start = s(S::WINDOW_START)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let end = s(S::WINDOW_END)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let n = s(S::N_READINGS)
            .as_any()
            .downcast_ref::<UInt32Array>()
            .unwrap();
        let mean = s("temp_c__mean")
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let complete = s(S::COMPLETE)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap();
        let score = s(S::ANOMALY_SCORE)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        let version = s(S::MODEL_VERSION)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for k in [
            "threshold",
            "p_value",
            "log_density_rel",
            "defect_prob",
            "alert",
            "line",
            "vib_rms__std",
            "current_a__slope",
        ] {
            s(k);
        }
        for i in 0..b.num_rows() {
            // Every machine streams until the stop: no window closes before its end.
            assert!(
                complete.value(i),
                "window closed early: {}",
                machine.value(i)
            );
            rows.push((
                machine.value(i).to_string(),
                start.value(i),
                end.value(i),
                n.value(i),
                mean.value(i),
                (!score.is_null(i)).then(|| score.value(i)),
                (!version.is_null(i)).then(|| version.value(i).to_string()),
            ));
        }
    }
    rows
}

pub fn check_windows(out: impl Into<Location>, expected: &BTreeMap<(String, i64), Vec<f64>>) {
    let rows = read_scores(out);
    let mut seen = HashSet::new();
    for (machine, start, end, n, mean, score, version) in &rows {
        assert!(
            seen.insert((machine.clone(), *start)),
            "window {machine}@{start} written twice"
        );
        assert_eq!(end - start, WINDOW_MS);
        let values = expected
            .get(&(machine.clone(), *start))
            .unwrap_or_else(|| panic!("unexpected window {machine}@{start}"));
        assert_eq!(*n as usize, values.len(), "n_readings of {machine}@{start}");
        let m = values.iter().sum::<f64>() / values.len() as f64;
        assert!(
            (*mean - m).abs() < 1e-9 * m.abs().max(1.0),
            "mean {mean} vs {m}"
        );
        assert_eq!(score.is_some(), version.is_some());
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !seen.contains(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "windows missing from Parquet, e.g. {missing:?}"
    );
    assert_eq!(rows.len(), expected.len());
}

/// Alerts on the topic: (alert_id, state) must be unique; returns the parsed messages.
pub fn check_alert_topic(topic: &str) -> Vec<serde_json::Value> {
    check_alert_topic_on(&super::brokers(), topic)
}

/// [`check_alert_topic`] on the broker at `brokers`.
pub fn check_alert_topic_on(brokers: &str, topic: &str) -> Vec<serde_json::Value> {
    let msgs = super::read_all_on(brokers, topic, 1);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("alert is JSON");
        let id = v["alert_id"].as_str().expect("alert_id").to_string();
        let state = v["state"].as_str().expect("state").to_string();
        assert!(
            seen.insert((id.clone(), state.clone())),
            "alert {id} {state} twice on the topic"
        );
        for k in [
            "line",
            "machine",
            "window_start",
            "window_end",
            "anomaly_score",
            "threshold",
            "p_value",
            "defect_prob",
            "top_features",
            "model_version",
        ] {
            assert!(v.get(k).is_some(), "alert without {k}: {v}");
        }
        out.push(v);
    }
    out
}

/// What a run left in Parquet against the windows the watermark closed, counted rather than
/// asserted (the chaos runs print it).
#[derive(Debug, Default)]
pub struct Census {
    /// Windows the watermark closed (each expected exactly once, complete).
    pub expected: usize,
    /// Distinct expected windows found.
    pub written: usize,
    /// Extra copies of a window already found.
    pub duplicated: usize,
    /// Windows written with fewer (or more) readings than they hold.
    pub partial: usize,
    /// Expected windows not found.
    pub missing: usize,
    /// Windows found that were not expected (still open at the stop).
    pub unexpected: usize,
}

impl Census {
    /// The counts as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "windows_expected": self.expected,
            "windows_written": self.written,
            "windows_duplicated": self.duplicated,
            "windows_partial": self.partial,
            "windows_missing": self.missing,
            "windows_unexpected": self.unexpected,
        })
    }

    /// Every expected window once, complete, and nothing else.
    pub fn is_clean(&self) -> bool {
        self.written == self.expected
            && self.duplicated + self.partial + self.missing + self.unexpected == 0
    }
}

/// Counts the scores table against `expected` (see [`Census`]).
pub fn census(out: impl Into<Location>, expected: &BTreeMap<(String, i64), Vec<f64>>) -> Census {
    let mut c = Census {
        expected: expected.len(),
        ..Census::default()
    };
    let mut seen = HashSet::new();
    for (machine, start, _, n, _, _, _) in read_scores(out) {
        let key = (machine, start);
        let Some(values) = expected.get(&key) else {
            c.unexpected += 1;
            continue;
        };
        if !seen.insert(key) {
            c.duplicated += 1;
            continue;
        }
        c.written += 1;
        if n as usize != values.len() {
            c.partial += 1;
        }
    }
    c.missing = c.expected - c.written;
    c
}

/// `(alert_id, state)` pairs on the topic more than once (counted, not asserted).
pub fn repeated_alerts_on(brokers: &str, topic: &str) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut repeated = 0;
    let msgs = super::read_all_on(brokers, topic, 1);
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("alert is JSON");
        let key = (v["alert_id"].to_string(), v["state"].to_string());
        if !seen.insert(key) {
            repeated += 1;
        }
    }
    (msgs.len(), repeated)
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the operations endpoint: (status code, body); None when it does not answer.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

/// The sum of a counter's series in a Prometheus text page (0 when absent).
pub fn counter_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
