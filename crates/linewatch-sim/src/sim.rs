//! The simulator: a merge of per-machine sample, inspection and late-delivery schedules.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::config::{FaultConfig, SimConfig};
use crate::error::SimError;
use crate::event::{SimEvent, SimInspection, SimReading};
use crate::fault::{FaultKind, FaultRecord};

/// Random streams of one machine. Each concern draws from its own stream so that, e.g.,
/// turning faults off leaves the normal signal and the delivery pattern unchanged, and a
/// machine's streams do not depend on how many machines there are.
const STREAM_SIGNAL: u64 = 0;
const STREAM_FAULT_PLAN: u64 = 1;
const STREAM_FAULT_EFFECT: u64 = 2;
const STREAM_INSPECTION: u64 = 3;
const STREAM_DELIVERY: u64 = 4;
const STREAMS_PER_MACHINE: u64 = 8;

/// Cross-loading of a channel on the factor after its main one.
const CROSS_LOADING: f64 = 0.3;

/// Draws the next fault of a machine, starting after `after_ms`.
fn plan_fault(
    f: &FaultConfig,
    channels: usize,
    rng: &mut ChaCha8Rng,
    after_ms: i64,
) -> Option<Planned> {
    if !f.enabled || f.kinds.is_empty() || channels == 0 {
        return None;
    }
    let u: f64 = rng.random();
    let exp_gap = (f.mean_gap_ms - f.min_gap_ms) as f64 * -(1.0 - u).ln();
    let start_ms = after_ms
        .saturating_add(f.min_gap_ms)
        .saturating_add(exp_gap as i64);
    let duration = f.min_duration_ms + rng.random_range(0..=f.max_duration_ms - f.min_duration_ms);
    let kind = f.kinds[rng.random_range(0..f.kinds.len())];
    let channel = rng.random_range(0..channels);
    let severity = f.severity_min + (f.severity_max - f.severity_min) * rng.random::<f64>();
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    Some(Planned {
        kind,
        channel,
        start_ms,
        end_ms: start_ms.saturating_add(duration),
        severity,
        sign,
    })
}

fn rng(seed: u64, machine: usize, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream((machine as u64).wrapping_mul(STREAMS_PER_MACHINE) + stream);
    r
}

/// A fault drawn for the future.
#[derive(Debug, Clone)]
struct Planned {
    kind: FaultKind,
    channel: usize,
    start_ms: i64,
    end_ms: i64,
    severity: f64,
    /// Drift direction, +1 or -1.
    sign: f64,
}

/// The fault in progress on a machine.
#[derive(Debug, Clone)]
struct Active {
    plan: Planned,
    /// The channel's last reported value before the fault (for `Stuck`).
    stuck_value: f64,
    /// Readings left in the current spike burst.
    burst_left: u32,
    /// No reading of this fault yet (a spike fault starts with a burst).
    first: bool,
}

#[derive(Debug)]
struct Machine {
    id: Arc<str>,
    signal: ChaCha8Rng,
    fault_plan: ChaCha8Rng,
    fault_effect: ChaCha8Rng,
    inspection: ChaCha8Rng,
    delivery: ChaCha8Rng,
    /// Index of the next sample (its nominal time is `start + n * interval`).
    n: i64,
    /// Index of the next inspection (>= 1).
    k: i64,
    /// Phase of this machine's inspections.
    inspection_phase: i64,
    factors: Vec<f64>,
    last: Vec<f64>,
    planned: Option<Planned>,
    active: Option<Active>,
    /// Indices into `Simulator::faults`, in start order.
    fault_idx: Vec<usize>,
}

#[derive(Debug)]
enum Task {
    Sample(usize),
    Inspect(usize),
    /// Boxed to keep heap items small (they are moved on every push and pop).
    Deliver(Box<SimReading>),
}

/// A scheduled task; the heap pops the smallest `(at, seq)` first. `seq` is unique.
#[derive(Debug)]
struct Item {
    at: i64,
    seq: u64,
    task: Task,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Deterministic simulator of one production line. See the crate docs for the model.
#[derive(Debug)]
pub struct Simulator {
    cfg: SimConfig,
    line: Arc<str>,
    names: Vec<Arc<str>>,
    levels: Vec<f64>,
    scales: Vec<f64>,
    /// Row-major `channels x factors`.
    loadings: Vec<f64>,
    noise_sd: Vec<f64>,
    innovation_sd: f64,
    round_scale: f64,
    warmup_end_ms: i64,
    machines: Vec<Machine>,
    by_id: HashMap<String, usize>,
    heap: BinaryHeap<Item>,
    seq: u64,
    faults: Vec<FaultRecord>,
}

impl Simulator {
    /// Validates the config and sets up the line at `cfg.start_ms`.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let channels = cfg.effective_channels();
        let c = channels.len();
        let k = cfg.factors;
        let mut loadings = vec![0.0; c * k];
        let noise_sd = if k == 0 {
            vec![1.0; c]
        } else {
            let main = 1.0;
            let cross = if k > 1 { CROSS_LOADING } else { 0.0 };
            let norm = (main * main + cross * cross).sqrt();
            let a = cfg.factor_loading.sqrt();
            for j in 0..c {
                loadings[j * k + j % k] += a * main / norm;
                loadings[j * k + (j + 1) % k] += a * cross / norm;
            }
            vec![(1.0 - cfg.factor_loading).sqrt(); c]
        };
        let warmup_end_ms = cfg.start_ms.saturating_add(cfg.warmup_ms);
        let names: Vec<Arc<str>> = channels
            .iter()
            .map(|c| Arc::from(c.name.as_str()))
            .collect();
        let mut sim = Self {
            line: Arc::from(cfg.line.as_str()),
            levels: channels.iter().map(|c| c.level).collect(),
            scales: channels.iter().map(|c| c.scale).collect(),
            names,
            loadings,
            noise_sd,
            innovation_sd: (1.0 - cfg.factor_ar * cfg.factor_ar).sqrt(),
            round_scale: 10f64.powi(cfg.decimals as i32),
            warmup_end_ms,
            machines: Vec::with_capacity(cfg.machines),
            by_id: HashMap::with_capacity(cfg.machines),
            heap: BinaryHeap::new(),
            seq: 0,
            faults: Vec::new(),
            cfg,
        };
        for (m, id) in sim.cfg.machine_ids().into_iter().enumerate() {
            let seed = sim.cfg.seed;
            let mut machine = Machine {
                id: Arc::from(id.as_str()),
                signal: rng(seed, m, STREAM_SIGNAL),
                fault_plan: rng(seed, m, STREAM_FAULT_PLAN),
                fault_effect: rng(seed, m, STREAM_FAULT_EFFECT),
                inspection: rng(seed, m, STREAM_INSPECTION),
                delivery: rng(seed, m, STREAM_DELIVERY),
                n: 0,
                k: 1,
                inspection_phase: (m as i64).saturating_mul(sim.cfg.inspections.interval_ms)
                    / sim.cfg.machines as i64,
                factors: Vec::with_capacity(k),
                last: sim.levels.clone(),
                planned: None,
                active: None,
                fault_idx: Vec::new(),
            };
            for _ in 0..k {
                machine.factors.push(machine.signal.sample(StandardNormal));
            }
            machine.planned =
                plan_fault(&sim.cfg.faults, c, &mut machine.fault_plan, warmup_end_ms);
            let first_ts = sim.cfg.start_ms + sim.jitter(&mut machine.delivery);
            let first_inspection = sim.inspection_time(&machine);
            sim.by_id.insert(id, m);
            sim.machines.push(machine);
            sim.push(first_ts, Task::Sample(m));
            if sim.cfg.inspections.enabled {
                sim.push(first_inspection, Task::Inspect(m));
            }
        }
        Ok(sim)
    }

    /// The validated configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Channel names, in the order of every reading's `values`.
    pub fn channel_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(|n| n.as_ref())
    }

    /// Machine ids, `m-000`, ...
    pub fn machine_ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.machines.iter().map(|m| m.id.as_ref())
    }

    /// End of the fault-free warm-up, epoch ms (`start_ms + warmup_ms`); no fault starts
    /// before it.
    pub fn warmup_end_ms(&self) -> i64 {
        self.warmup_end_ms
    }

    /// Produces, in emission order, every event whose emission time is before `until_ms`.
    ///
    /// A reading is emitted at its event time, except a late one (a `late_fraction` share),
    /// which is emitted `interval_ms + jitter_ms + 1 ..= max_late_ms` after its event time,
    /// so after the next reading of its machine. Inspections are never late. So the events
    /// returned are those with event time `< until_ms`, less the late readings still in
    /// flight (they come in a later call), plus late readings of earlier times now due.
    /// Calling this repeatedly with increasing `until_ms` yields the same overall sequence
    /// whatever the step. Event time grows with the calls: each call's work and memory are
    /// proportional to the event time it covers.
    pub fn next_events(&mut self, until_ms: i64) -> Vec<SimEvent> {
        let mut out = Vec::new();
        while self.heap.peek().is_some_and(|i| i.at < until_ms) {
            let Some(item) = self.heap.pop() else { break };
            match item.task {
                Task::Sample(m) => {
                    let reading = self.sample(m, item.at);
                    let cfg = &self.cfg;
                    let mach = &mut self.machines[m];
                    let late = mach.delivery.random::<f64>() < cfg.late_fraction;
                    let next_ts = {
                        mach.n += 1;
                        let jitter = if cfg.jitter_ms > 0 {
                            mach.delivery.random_range(0..=cfg.jitter_ms)
                        } else {
                            0
                        };
                        cfg.start_ms
                            .saturating_add(mach.n.saturating_mul(cfg.interval_ms))
                            .saturating_add(jitter)
                    };
                    if late {
                        let lo = cfg.interval_ms + cfg.jitter_ms + 1;
                        let delay = mach.delivery.random_range(lo..=cfg.max_late_ms.max(lo));
                        self.push(
                            item.at.saturating_add(delay),
                            Task::Deliver(Box::new(reading)),
                        );
                    } else {
                        out.push(SimEvent::Reading(reading));
                    }
                    self.push(next_ts, Task::Sample(m));
                }
                Task::Inspect(m) => {
                    out.push(SimEvent::Inspection(self.inspect(m, item.at)));
                    self.machines[m].k += 1;
                    let next = self.inspection_time(&self.machines[m]);
                    self.push(next, Task::Inspect(m));
                }
                Task::Deliver(reading) => out.push(SimEvent::Reading(*reading)),
            }
        }
        out
    }

    /// Ground truth: every fault started so far (on any machine, in start order), each with
    /// its full planned span, also when it has not ended yet.
    pub fn faults(&self) -> &[FaultRecord] {
        &self.faults
    }

    /// The fault active on `machine` at event time `ts_ms` (`start_ms <= ts_ms < end_ms`),
    /// among the faults started so far.
    pub fn fault_active(&self, machine: &str, ts_ms: i64) -> Option<&FaultRecord> {
        let m = self.machines.get(*self.by_id.get(machine)?)?;
        let after = m
            .fault_idx
            .partition_point(|&i| self.faults[i].start_ms <= ts_ms);
        let f = &self.faults[*m.fault_idx.get(after.checked_sub(1)?)?];
        f.contains(ts_ms).then_some(f)
    }

    fn push(&mut self, at: i64, task: Task) {
        self.seq += 1;
        self.heap.push(Item {
            at,
            seq: self.seq,
            task,
        });
    }

    fn jitter(&self, rng: &mut ChaCha8Rng) -> i64 {
        if self.cfg.jitter_ms > 0 {
            rng.random_range(0..=self.cfg.jitter_ms)
        } else {
            0
        }
    }

    fn inspection_time(&self, m: &Machine) -> i64 {
        self.cfg
            .start_ms
            .saturating_add(m.inspection_phase)
            .saturating_add(m.k.saturating_mul(self.cfg.inspections.interval_ms))
    }

    /// Starts every planned fault of machine `m` due at `ts`, ends the active one when over.
    fn advance_faults(&mut self, m: usize, ts: i64) {
        loop {
            let mach = &mut self.machines[m];
            if mach.active.as_ref().is_some_and(|a| ts >= a.plan.end_ms) {
                mach.active = None;
            }
            let Some(plan) = mach.planned.take_if(|p| p.start_ms <= ts) else {
                return;
            };
            mach.planned = plan_fault(
                &self.cfg.faults,
                self.names.len(),
                &mut mach.fault_plan,
                plan.end_ms,
            );
            self.faults.push(FaultRecord {
                machine: mach.id.to_string(),
                kind: plan.kind,
                channels: vec![self.names[plan.channel].to_string()],
                start_ms: plan.start_ms,
                end_ms: plan.end_ms,
                severity: plan.severity,
            });
            mach.fault_idx.push(self.faults.len() - 1);
            mach.active = Some(Active {
                stuck_value: mach.last[plan.channel],
                plan,
                burst_left: 0,
                first: true,
            });
        }
    }

    fn sample(&mut self, m: usize, ts: i64) -> SimReading {
        self.advance_faults(m, ts);
        let k = self.cfg.factors;
        let f = &self.cfg.faults;
        let mach = &mut self.machines[m];
        for x in &mut mach.factors {
            let eta: f64 = mach.signal.sample(StandardNormal);
            *x = self.cfg.factor_ar * *x + self.innovation_sd * eta;
        }
        let mut values = Vec::with_capacity(self.names.len());
        for (j, name) in self.names.iter().enumerate() {
            let common: f64 = self.loadings[j * k..(j + 1) * k]
                .iter()
                .zip(&mach.factors)
                .map(|(l, x)| l * x)
                .sum();
            let e: f64 = mach.signal.sample(StandardNormal);
            let mut z = common + self.noise_sd[j] * e;
            let mut stuck = None;
            if let Some(a) = mach.active.as_mut().filter(|a| a.plan.channel == j) {
                let s = a.plan.severity;
                match a.plan.kind {
                    FaultKind::Drift => {
                        let span = (a.plan.end_ms - a.plan.start_ms).max(1) as f64;
                        let frac = ((ts - a.plan.start_ms) as f64 / span).clamp(0.0, 1.0);
                        z += a.plan.sign * s * f.drift_sd * frac;
                    }
                    FaultKind::Spike => {
                        if a.burst_left == 0
                            && (a.first || mach.fault_effect.random::<f64>() < f.spike_rate)
                        {
                            a.burst_left = mach.fault_effect.random_range(1..=f.spike_max_len);
                        }
                        if a.burst_left > 0 {
                            a.burst_left -= 1;
                            z += s * f.spike_sd;
                        }
                    }
                    FaultKind::Stuck => stuck = Some(a.stuck_value),
                    FaultKind::VarianceBurst => {
                        z += self.noise_sd[j] * e * s * (f.variance_factor - 1.0);
                    }
                    FaultKind::BrokenCorrelation => {
                        z = mach.fault_effect.sample(StandardNormal);
                    }
                }
                a.first = false;
            }
            let x = stuck.unwrap_or_else(|| {
                ((self.levels[j] + self.scales[j] * z) * self.round_scale).round()
                    / self.round_scale
            });
            mach.last[j] = x;
            values.push((Arc::clone(name), x));
        }
        SimReading {
            line: Arc::clone(&self.line),
            machine: Arc::clone(&mach.id),
            ts_ms: ts,
            values,
        }
    }

    fn inspect(&mut self, m: usize, ts: i64) -> SimInspection {
        self.advance_faults(m, ts);
        let i = &self.cfg.inspections;
        let mach = &mut self.machines[m];
        let severity = mach
            .active
            .as_ref()
            .filter(|a| a.plan.start_ms <= ts && ts < a.plan.end_ms)
            .map_or(0.0, |a| a.plan.severity);
        let p = i.base_rate + (i.max_rate - i.base_rate) * severity;
        let defect = mach.inspection.random::<f64>() < p;
        SimInspection {
            line: Arc::clone(&self.line),
            machine: Arc::clone(&mach.id),
            ts_ms: ts,
            defect,
        }
    }
}
