//! The durability decisions one by one, then a model of one partition's life built from them
//! (the real windower and alerter, files and the alert topic as vectors) that crashes at
//! every point and checks what the end-to-end crash test (`tests/e2e_pipeline.rs`) checks
//! against a broker: no window missing or doubled, no alert lost or repeated.

use std::sync::Arc;

use linewatch_window::{ChannelSet, ClosedWindow, Reading, WindowConfig, Windower};

use super::*;
use crate::alerter::{AlertState, Alerter, ScoredWindow};

fn alert(id: &str, state: AlertState) -> Alert {
    Alert {
        alert_id: id.into(),
        line: "l".into(),
        machine: "m".into(),
        window_start: String::new(),
        window_end: String::new(),
        state,
        anomaly_score: 9.0,
        threshold: 5.0,
        p_value: Some(0.001),
        defect_prob: None,
        top_features: Vec::new(),
        model_version: "v000001".into(),
        window_start_ms: 0,
        window_end_ms: 0,
    }
}

fn key(id: &str, state: &str) -> AlertKey {
    (id.into(), state.into())
}

fn map(entries: &[(&str, i64)]) -> DurableMap {
    entries.iter().map(|(m, s)| (m.to_string(), *s)).collect()
}

fn footer(seq: u64, durable: &[(&str, i64)]) -> HashMap<String, String> {
    let alerter = HashMap::from([(
        "m".to_string(),
        MachineAlertState {
            over: seq as u32,
            ..Default::default()
        },
    )]);
    footer_metadata("p", seq, &map(durable), &alerter)
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn commit_stops_at_the_oldest_reading_still_held_in_an_open_window() {
    // Readings 0..=10 consumed; an open window still holds reading 4: a restart must read 4
    // again, so 4 is committed (5 would lose it).
    assert_eq!(next_commit_offset(Some(10), Some(4), None), Some(4));
    assert_eq!(next_commit_offset(Some(10), Some(10), None), Some(10));
}

#[test]
fn commit_stops_at_the_oldest_reading_of_a_row_not_yet_written() {
    assert_eq!(next_commit_offset(Some(10), None, Some(3)), Some(3));
    assert_eq!(next_commit_offset(Some(10), Some(8), Some(6)), Some(6));
    assert_eq!(next_commit_offset(Some(10), Some(2), Some(6)), Some(2));
}

#[test]
fn with_nothing_held_the_commit_is_one_past_the_last_message() {
    assert_eq!(next_commit_offset(Some(10), None, None), Some(11));
    assert_eq!(next_commit_offset(Some(0), None, None), Some(1));
    assert_eq!(next_commit_offset(None, Some(3), None), None);
}

#[test]
fn commits_only_move_forward() {
    assert!(advances(None, 0));
    assert!(advances(Some(4), 5));
    assert!(!advances(Some(5), 5));
    assert!(!advances(Some(6), 5));
}

#[test]
fn a_replay_skips_windows_up_to_the_last_durable_one_per_machine() {
    let d = map(&[("a", 20_000)]);
    assert!(already_durable(&d, "a", 10_000));
    assert!(already_durable(&d, "a", 20_000));
    assert!(!already_durable(&d, "a", 30_000));
    assert!(!already_durable(&d, "b", 0));
}

#[test]
fn the_durable_map_keeps_the_latest_window_per_machine() {
    let mut update = DurableMap::new();
    note_durable(&mut update, "a", 30);
    note_durable(&mut update, "a", 10);
    note_durable(&mut update, "b", 5);
    assert_eq!(update, map(&[("a", 30), ("b", 5)]));
    let after = merged(&map(&[("a", 40), ("c", 1)]), &update);
    assert_eq!(after, map(&[("a", 40), ("b", 5), ("c", 1)]));
}

#[test]
fn files_are_named_after_the_offsets_they_cover() {
    // Messages 7..=12 since the last file.
    assert_eq!(file_offsets(Some(7), Some(12), Some(3), Some(12)), (7, 12));
    // Rows closed without a message in between (idle eviction, shutdown).
    assert_eq!(file_offsets(None, None, Some(3), Some(12)), (3, 12));
    assert_eq!(file_offsets(None, None, None, Some(12)), (12, 12));
    assert_eq!(file_offsets(None, None, None, None), (0, 0));
    assert_eq!(file_offsets(Some(9), Some(4), None, None), (9, 9));
}

#[test]
fn a_footer_round_trips_into_the_state_a_restart_resumes_from() {
    let r = restore_from_footers([footer(4, &[("a", 10), ("b", 20)])]);
    assert_eq!(r.flush_seq, 5);
    assert_eq!(r.durable, map(&[("a", 10), ("b", 20)]));
    assert_eq!(r.alerter["m"].over, 4);
    assert_eq!(restore_from_footers([]), FooterState::default());
}

#[test]
fn restore_takes_the_newest_flush_and_merges_the_files_it_wrote() {
    let mut no_seq = footer(9, &[("z", 1)]);
    no_seq.remove(META_SEQ);
    let mut broken = footer(2, &[]);
    broken.insert(META_DURABLE.into(), "not json".into());
    let r = restore_from_footers([
        footer(0, &[("a", 10)]),
        footer(2, &[("a", 30)]),
        no_seq,
        footer(1, &[("a", 20), ("b", 20)]),
        // One flush writes a file per hive partition: same sequence, maps merged.
        footer(2, &[("b", 40), ("a", 25)]),
        broken,
    ]);
    assert_eq!(r.flush_seq, 3);
    assert_eq!(r.durable, map(&[("a", 30), ("b", 40)]));
    assert_eq!(r.alerter["m"].over, 2);
}

#[test]
fn alerts_after_the_ack_marker_are_unacknowledged_each_once() {
    let files = || {
        vec![
            (Some(0), vec![alert("a", AlertState::Open)]),
            (Some(1), vec![alert("b", AlertState::Open)]),
            (
                Some(2),
                vec![
                    alert("b", AlertState::Open),
                    alert("a", AlertState::Resolved),
                ],
            ),
            (None, vec![alert("c", AlertState::Open)]),
        ]
    };
    let h = alert_history(files(), Some(0));
    assert_eq!(h.known.len(), 4);
    assert!(h.known.contains(&key("a", "open")));
    let unacked: Vec<AlertKey> = h.unacked.iter().map(alert_key).collect();
    assert_eq!(
        unacked,
        vec![key("b", "open"), key("a", "resolved"), key("c", "open")]
    );
    // Without a marker nothing is known to be acknowledged.
    assert_eq!(alert_history(files(), None).unacked.len(), 4);
    // Everything acknowledged but the file without a sequence.
    assert_eq!(alert_history(files(), Some(2)).unacked.len(), 1);
}

#[test]
fn reconciling_sends_only_what_the_topic_lacks() {
    let unacked = vec![
        alert("a", AlertState::Open),
        alert("a", AlertState::Resolved),
    ];
    let on_topic = HashSet::from([key("a", "open")]);
    let missing = missing_from_topic(&unacked, &on_topic);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].state, AlertState::Resolved);
}

#[test]
fn the_ack_marker_covers_every_file_written() {
    assert_eq!(acked_through(0), None);
    assert_eq!(acked_through(3), Some(2));
    assert_eq!(parse_acked_marker(" 7\n"), Some(7));
    assert_eq!(parse_acked_marker("seven"), None);
    assert_eq!(acked_marker_key(3), "_state/alerts-acked-p00003");
}

#[test]
fn restore_reads_only_the_newest_two_dates_of_its_partition() {
    let f = |p: i32, date: &str| FileInfo {
        location: linewatch_sink::Location::local(format!("{p}-{date}")),
        partition: p,
        first_offset: 0,
        last_offset: 0,
        date: date.into(),
        line: "l".into(),
    };
    let files = vec![
        f(0, "2025-01-01"),
        f(0, "2025-01-03"),
        f(1, "2025-01-04"),
        f(0, "2025-01-02"),
        f(0, "2025-01-03"),
    ];
    let kept: Vec<String> = recent_files(files, 0).into_iter().map(|f| f.date).collect();
    assert_eq!(kept, vec!["2025-01-03", "2025-01-02", "2025-01-03"]);
}

// --- A partition's life, crashing anywhere -----------------------------------------------

const WINDOW_MS: i64 = 10_000;
const FLUSH_EVERY: usize = 7;

/// How the commit offset is computed (the real rule, or a broken one to show the model
/// notices).
type CommitRule = fn(Option<i64>, Option<u64>, Option<u64>) -> Option<i64>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Crash {
    Never,
    /// SIGKILL after handling message `i` (and its flush and commit, if any).
    AfterMessage(usize),
    /// During the flush at message `i`: the alerts file is written, the scores file is not.
    BetweenFiles(usize),
    /// During the flush at message `i`: both files written, alerts not produced.
    BeforeAck(usize),
    /// Graceful stop (SIGTERM, a deploy) after message `i`, as the pipeline stops: the closed
    /// windows it holds are written and acknowledged and the offset committed; open windows
    /// stay open, and the next life completes them from the committed offset.
    Stop(usize),
    /// A graceful stop that also closed and wrote its open windows (the pipeline before
    /// issue 12): those windows are written partial, and their later readings are skipped.
    StopClosingOpenWindows(usize),
}

/// A scores file in the model: its windows `(machine, start, n_readings)` and its footer.
type ScoresFile = (Vec<(String, i64, u32)>, HashMap<String, String>);

/// What survives a crash: the files, the ack marker, the alert topic, the committed offset.
#[derive(Default)]
struct Durable {
    scores: Vec<ScoresFile>,
    alert_files: Vec<(u64, Vec<Alert>)>,
    marker: Option<u64>,
    topic: Vec<Alert>,
    committed: Option<i64>,
}

/// What a crash loses.
struct Live {
    windower: Windower,
    alerter: Alerter,
    durable: DurableMap,
    update: DurableMap,
    rows: Vec<ClosedWindow>,
    alerts: Vec<Alert>,
    known: HashSet<AlertKey>,
    flush_seq: u64,
    last_consumed: Option<i64>,
    last_committed: Option<i64>,
}

/// Two machines, one reading a second each, interleaved; each runs hot for a while (alerts).
fn readings() -> Vec<Reading> {
    let mut out = Vec::new();
    for i in 0..150i64 {
        for (m, offset, hot) in [("a", 0, 30..70), ("b", 500, 90..125)] {
            out.push(Reading {
                line: "l".into(),
                machine: m.into(),
                ts_ms: i * 1000 + offset,
                values: vec![("x".into(), if hot.contains(&i) { 10.0 } else { 1.0 })],
            });
        }
    }
    out
}

/// A restart: state from the newest footer, alerts reconciled with the topic.
fn start(d: &mut Durable) -> Live {
    let channels = Arc::new(ChannelSet::new(["x"]).unwrap());
    let windower = Windower::new(
        WindowConfig::tumbling(WINDOW_MS as u64, 0, 3_600_000),
        channels,
    )
    .unwrap();
    let restored = restore_from_footers(d.scores.iter().map(|(_, f)| f.clone()));
    let mut alerter = Alerter::new("p", 2, 2);
    alerter.restore(restored.alerter);
    let history = alert_history(
        d.alert_files.iter().map(|(s, a)| (Some(*s), a.clone())),
        d.marker,
    );
    let on_topic: HashSet<AlertKey> = d.topic.iter().map(alert_key).collect();
    let resend: Vec<Alert> = missing_from_topic(&history.unacked, &on_topic)
        .into_iter()
        .cloned()
        .collect();
    d.topic.extend(resend);
    if !history.unacked.is_empty() {
        d.marker = acked_through(restored.flush_seq);
    }
    Live {
        windower,
        alerter,
        durable: restored.durable,
        update: DurableMap::new(),
        rows: Vec::new(),
        alerts: Vec::new(),
        known: history.known,
        flush_seq: restored.flush_seq,
        last_consumed: None,
        last_committed: None,
    }
}

/// Scores and buffers the windows the windower closed (skipping those already written).
fn drain(live: &mut Live) {
    for w in live.windower.drain_closed() {
        if already_durable(&live.durable, &w.key.machine, w.start_ms) {
            continue;
        }
        let score = w.features[0].as_ref().map_or(0.0, |f| f.mean);
        let raised = live.alerter.observe(&ScoredWindow {
            line: &w.key.line,
            machine: &w.key.machine,
            window_start_ms: w.start_ms,
            window_end_ms: w.end_ms,
            anomaly_score: Some(score),
            threshold: Some(5.0),
            p_value: None,
            defect_prob: None,
            model_version: Some("v000001"),
            top_features: &[],
        });
        live.alerts.extend(raised);
        note_durable(&mut live.update, &w.key.machine, w.start_ms);
        live.rows.push(w);
    }
}

/// Writes the buffer (alerts, then scores), produces the alerts, records the ack. Returns
/// whether the crash `at` this flush happened.
fn flush(live: &mut Live, d: &mut Durable, crash: Crash, at: usize) -> bool {
    if live.rows.is_empty() {
        return false;
    }
    let durable = merged(&live.durable, &live.update);
    let seq = live.flush_seq;
    let footer = footer_metadata("p", seq, &durable, live.alerter.snapshot()).unwrap();
    let mut alerts = std::mem::take(&mut live.alerts);
    alerts.retain(|a| !live.known.contains(&alert_key(a)));
    if !alerts.is_empty() {
        d.alert_files.push((seq, alerts.clone()));
    }
    if crash == Crash::BetweenFiles(at) {
        return true;
    }
    let rows = live
        .rows
        .drain(..)
        .map(|w| (w.key.machine.to_string(), w.start_ms, w.n_readings))
        .collect();
    d.scores.push((rows, footer.into_iter().collect()));
    if crash == Crash::BeforeAck(at) {
        return true;
    }
    if !alerts.is_empty() {
        d.topic.extend(alerts);
        d.marker = Some(seq);
    }
    live.durable = durable;
    live.update.clear();
    live.flush_seq += 1;
    false
}

fn commit(live: &mut Live, d: &mut Durable, rule: CommitRule) {
    let oldest_row = live.rows.iter().map(|w| w.min_seq).min();
    if let Some(next) = rule(
        live.last_consumed,
        live.windower.min_unemitted_seq(),
        oldest_row,
    ) && advances(live.last_committed, next)
    {
        live.last_committed = Some(next);
        d.committed = Some(next);
    }
}

/// One life from the committed offset; `true` if it crashed.
fn life(d: &mut Durable, input: &[Reading], rule: CommitRule, crash: Crash) -> bool {
    let mut live = start(d);
    let from = d.committed.unwrap_or(0).max(0) as usize;
    for (i, r) in input.iter().enumerate().skip(from) {
        live.windower.push(r, i as u64).unwrap();
        drain(&mut live);
        live.last_consumed = Some(i as i64);
        if i % FLUSH_EVERY == FLUSH_EVERY - 1 && flush(&mut live, d, crash, i) {
            return true;
        }
        commit(&mut live, d, rule);
        if crash == Crash::AfterMessage(i) {
            return true;
        }
        if crash == Crash::Stop(i) || crash == Crash::StopClosingOpenWindows(i) {
            if crash == Crash::StopClosingOpenWindows(i) {
                live.windower.flush_all();
                drain(&mut live);
            }
            flush(&mut live, d, Crash::Never, 0);
            commit(&mut live, d, rule);
            return true;
        }
    }
    live.windower.flush_all();
    drain(&mut live);
    flush(&mut live, d, Crash::Never, 0);
    commit(&mut live, d, rule);
    false
}

/// Runs to the end, crashing once as told, and restarting; what is durable at the end.
fn run(rule: CommitRule, crash: Crash) -> Durable {
    let input = readings();
    let mut d = Durable::default();
    if life(&mut d, &input, rule, crash) {
        life(&mut d, &input, rule, Crash::Never);
    }
    d
}

/// The end-to-end crash test's checks: every window once with all its readings; alerts
/// unique on the topic and in the files, the same in both, and the same as without a crash.
fn check(d: &Durable, expected_alerts: &HashSet<AlertKey>) -> Result<(), String> {
    let mut expected: HashMap<(String, i64), u32> = HashMap::new();
    for r in readings() {
        *expected
            .entry((r.machine.clone(), r.ts_ms.div_euclid(WINDOW_MS) * WINDOW_MS))
            .or_default() += 1;
    }
    let mut seen = HashSet::new();
    for (m, start, n) in d.scores.iter().flat_map(|(rows, _)| rows) {
        if !seen.insert((m.clone(), *start)) {
            return Err(format!("window {m}@{start} written twice"));
        }
        let want = expected.get(&(m.clone(), *start)).copied();
        if want != Some(*n) {
            return Err(format!(
                "window {m}@{start}: {n} readings, expected {want:?}"
            ));
        }
    }
    if seen.len() != expected.len() {
        return Err(format!("{} windows of {}", seen.len(), expected.len()));
    }
    let mut on_topic = HashSet::new();
    for a in &d.topic {
        if !on_topic.insert(alert_key(a)) {
            return Err(format!(
                "alert {} {:?} twice on the topic",
                a.alert_id, a.state
            ));
        }
    }
    let mut in_files = HashSet::new();
    for a in d.alert_files.iter().flat_map(|(_, a)| a) {
        if !in_files.insert(alert_key(a)) {
            return Err(format!(
                "alert {} {:?} twice in Parquet",
                a.alert_id, a.state
            ));
        }
    }
    if on_topic != in_files || &on_topic != expected_alerts {
        return Err(format!(
            "alerts differ: topic {}, files {}, without a crash {}",
            on_topic.len(),
            in_files.len(),
            expected_alerts.len()
        ));
    }
    Ok(())
}

/// Every crash point of every kind; the first violation found.
fn crash_everywhere(rule: CommitRule) -> Result<(), String> {
    let baseline = run(rule, Crash::Never);
    let alerts: HashSet<AlertKey> = baseline.topic.iter().map(alert_key).collect();
    check(&baseline, &alerts)?;
    for i in 0..readings().len() {
        for crash in [
            Crash::AfterMessage(i),
            Crash::BetweenFiles(i),
            Crash::BeforeAck(i),
            Crash::Stop(i),
        ] {
            check(&run(rule, crash), &alerts).map_err(|e| format!("{crash:?}: {e}"))?;
        }
    }
    Ok(())
}

#[test]
fn the_model_raises_alerts_that_open_and_resolve() {
    let d = run(next_commit_offset, Crash::Never);
    let states: Vec<AlertState> = d.topic.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        [AlertState::Open, AlertState::Resolved].repeat(2),
        "both machines' hot spells open and resolve one alert each"
    );
    assert!(d.scores.len() > 10 && d.marker.is_some());
}

#[test]
fn a_crash_anywhere_loses_no_window_and_repeats_no_alert() {
    crash_everywhere(next_commit_offset).unwrap();
}

#[test]
fn a_commit_one_message_too_far_loses_readings_after_a_crash() {
    let one_too_far: CommitRule = |c, o, u| next_commit_offset(c, o, u).map(|n| n + 1);
    let err = crash_everywhere(one_too_far).unwrap_err();
    assert!(err.contains("readings, expected"), "{err}");
}

#[test]
fn a_stop_that_closes_open_windows_writes_them_partial() {
    let input = readings();
    let baseline = run(next_commit_offset, Crash::Never);
    let alerts: HashSet<AlertKey> = baseline.topic.iter().map(alert_key).collect();
    // Stopping in the middle of a window: it is written with the readings seen so far.
    let mid = (0..input.len())
        .find(|&i| input[i].ts_ms.rem_euclid(WINDOW_MS) > WINDOW_MS / 2)
        .unwrap();
    let err = check(
        &run(next_commit_offset, Crash::StopClosingOpenWindows(mid)),
        &alerts,
    )
    .unwrap_err();
    assert!(err.contains("readings, expected"), "{err}");
    check(&run(next_commit_offset, Crash::Stop(mid)), &alerts).unwrap();
}
