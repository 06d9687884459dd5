//! Device selection: `auto` | `cpu` | `cuda` | `cuda:N`.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Which device models train and score on.
///
/// `Auto` picks CUDA device 0 only when this build has the `cuda` feature *and* the CUDA
/// driver sees a GPU at run time *and* it opens, else the CPU; the choice is logged (the GPU's
/// name, or why not). The decision itself is the pure `choose`, tested for every case. (We
/// do not use `Device::cuda_if_available`: it decides by the compile-time feature and, in a
/// `cuda` build on a machine without a GPU, errors instead of falling back.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA 0 when usable, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA device with this ordinal (`cuda` = `cuda:0`); an error when not usable.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => match t.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map(Self::Cuda)
                    .map_err(|_| ModelError::BadDeviceSpec(s.to_string())),
                None => Err(ModelError::BadDeviceSpec(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceSpec {
    /// Opens the device. `Auto` never fails: it takes CUDA device 0 when this build has the
    /// `cuda` feature and the driver sees a GPU that opens, else the CPU, and logs one line
    /// saying which (the GPU's name) or why not. `Cuda(n)` fails with
    /// [`ModelError::DeviceUnavailable`] when the build lacks the `cuda` feature or the device
    /// is missing or cannot be opened; it never falls back silently.
    pub fn resolve(&self) -> Result<Device> {
        let compiled = cfg!(feature = "cuda");
        // Ask the driver only when a GPU could be used at all.
        let probe = if compiled && *self != Self::Cpu {
            cuda::device_count()
        } else {
            Ok(0)
        };
        let choice = match choose(*self, compiled, &probe) {
            Choice::Cuda(n) => match cuda::open(n) {
                Ok(d) => {
                    let gpu = cuda::gpu_name(&d).unwrap_or_else(|| "unknown GPU".to_string());
                    tracing::info!(
                        device = %device_name(&d),
                        gpu = %gpu,
                        "device {}: using CUDA",
                        self
                    );
                    return Ok(d);
                }
                Err(e) => after_open_error(*self, n, &e),
            },
            c => c,
        };
        match choice {
            Choice::Cpu => Ok(Device::Cpu),
            Choice::Fallback(reason) => {
                if compiled {
                    // A `cuda` build that ends on the CPU is worth a look.
                    tracing::warn!(
                        device = "cpu",
                        %reason,
                        "device auto: no usable GPU, using the CPU"
                    );
                } else {
                    tracing::info!(device = "cpu", %reason, "device auto: using the CPU");
                }
                Ok(Device::Cpu)
            }
            Choice::Unavailable(reason) => Err(ModelError::DeviceUnavailable(reason)),
            // `after_open_error` never returns `Cuda`; treat it as unavailable all the same.
            Choice::Cuda(n) => Err(ModelError::DeviceUnavailable(format!("cuda:{n}"))),
        }
    }
}

/// The outcome of [`choose`]: what [`DeviceSpec::resolve`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Choice {
    /// The CPU, as asked.
    Cpu,
    /// Open this CUDA ordinal.
    Cuda(usize),
    /// `auto` found no usable GPU: the CPU, for this reason (logged).
    Fallback(String),
    /// An explicit `cuda:N` that cannot be had, for this reason (an error).
    Unavailable(String),
}

/// Decides the device from the request, whether this build has the `cuda` feature, and what
/// the CUDA driver said at run time (`Ok(number of GPUs)` or its error; ignored without the
/// feature). Pure, so that every case is testable on a machine without a GPU.
fn choose(
    spec: DeviceSpec,
    cuda_compiled: bool,
    probe: &std::result::Result<usize, String>,
) -> Choice {
    let why_not = |n: usize| -> Option<String> {
        if !cuda_compiled {
            return Some("this build has no `cuda` feature".to_string());
        }
        match probe {
            Err(e) => Some(format!("the CUDA driver finds no usable GPU: {e}")),
            Ok(0) => Some("the CUDA driver sees no GPU".to_string()),
            Ok(count) if n >= *count => Some(format!(
                "no such GPU: the CUDA driver sees {count} (cuda:0 to cuda:{})",
                count - 1
            )),
            Ok(_) => None,
        }
    };
    match spec {
        DeviceSpec::Cpu => Choice::Cpu,
        DeviceSpec::Auto => match why_not(0) {
            None => Choice::Cuda(0),
            Some(reason) => Choice::Fallback(reason),
        },
        DeviceSpec::Cuda(n) => match why_not(n) {
            None => Choice::Cuda(n),
            Some(reason) => Choice::Unavailable(format!("cuda:{n}: {reason}")),
        },
    }
}

/// What follows when [`choose`] picked `cuda:n` but opening it failed (driver/toolkit
/// mismatch, out of memory, ...): `auto` falls back to the CPU, an explicit request errors.
fn after_open_error(spec: DeviceSpec, n: usize, err: &str) -> Choice {
    match spec {
        DeviceSpec::Auto => Choice::Fallback(format!("opening cuda:{n} failed: {err}")),
        DeviceSpec::Cpu | DeviceSpec::Cuda(_) => {
            Choice::Unavailable(format!("cuda:{n}: opening it failed: {err}"))
        }
    }
}

/// The CUDA side, real only in a `cuda` build.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::Device;
    use candle_core::cuda_backend::cudarc::driver::CudaContext;

    /// How many GPUs the driver sees, or why it cannot say (no device, driver error, ...).
    pub(super) fn device_count() -> Result<usize, String> {
        CudaContext::device_count()
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| e.to_string())
    }

    pub(super) fn open(n: usize) -> Result<Device, String> {
        Device::new_cuda(n).map_err(|e| e.to_string())
    }

    /// The GPU's product name, e.g. "NVIDIA H200".
    pub(super) fn gpu_name(d: &Device) -> Option<String> {
        d.as_cuda_device().ok()?.cuda_stream().context().name().ok()
    }
}

/// The CUDA side of a build without the `cuda` feature: nothing to find or open.
#[cfg(not(feature = "cuda"))]
mod cuda {
    use candle_core::Device;

    pub(super) fn device_count() -> Result<usize, String> {
        Ok(0)
    }

    pub(super) fn open(n: usize) -> Result<Device, String> {
        Err(format!("cuda:{n}: this build has no `cuda` feature"))
    }

    pub(super) fn gpu_name(_d: &Device) -> Option<String> {
        None
    }
}

/// A short name of a device for logs and metadata: `cpu`, `cuda:N`, `metal:N`.
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The device the tests run on: `LINEWATCH_TEST_DEVICE` (`auto`, `cpu`, `cuda`, `cuda:N`),
/// the CPU when unset. Panics when the variable is malformed or names a device that cannot be
/// opened, so that `LINEWATCH_TEST_DEVICE=cuda` on a machine without a GPU fails loudly.
#[cfg(test)]
pub(crate) fn test_device() -> Device {
    let spec = match std::env::var("LINEWATCH_TEST_DEVICE") {
        Ok(s) if !s.trim().is_empty() => s
            .parse::<DeviceSpec>()
            .unwrap_or_else(|e| panic!("LINEWATCH_TEST_DEVICE: {e}")),
        _ => DeviceSpec::Cpu,
    };
    spec.resolve()
        .unwrap_or_else(|e| panic!("LINEWATCH_TEST_DEVICE={spec}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use candle_core::{DType, Tensor, Var};

    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!(" CPU ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["", "cuda:", "cuda:x", "cuda:-1", "tpu", "cpu:0"] {
            assert!(
                matches!(bad.parse::<DeviceSpec>(), Err(ModelError::BadDeviceSpec(_))),
                "{bad}"
            );
        }
        for s in [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Cuda(2)] {
            assert_eq!(s.to_string().parse::<DeviceSpec>().unwrap(), s);
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<DeviceSpec>(&j).unwrap(), s);
        }
    }

    fn no_device() -> std::result::Result<usize, String> {
        Err("DriverError(CUDA_ERROR_NO_DEVICE, \"no CUDA-capable device is detected\")".into())
    }

    #[test]
    fn choose_cpu_build() {
        // Without the `cuda` feature the probe is irrelevant, even one that claims GPUs.
        for probe in [Ok(0), Ok(2), no_device()] {
            assert_eq!(choose(DeviceSpec::Cpu, false, &probe), Choice::Cpu);
            match choose(DeviceSpec::Auto, false, &probe) {
                Choice::Fallback(r) => assert!(r.contains("no `cuda` feature"), "{r}"),
                c => panic!("auto in a CPU build: {c:?}"),
            }
            match choose(DeviceSpec::Cuda(0), false, &probe) {
                Choice::Unavailable(r) => {
                    assert!(
                        r.starts_with("cuda:0: ") && r.contains("no `cuda` feature"),
                        "{r}"
                    );
                }
                c => panic!("explicit cuda in a CPU build: {c:?}"),
            }
        }
    }

    #[test]
    fn choose_cuda_build_without_gpu() {
        // The driver errors (no device, no driver) or reports zero GPUs: auto falls back to
        // the CPU with the driver's reason, an explicit cuda is an error, never the CPU.
        for (probe, says) in [
            (no_device(), "CUDA_ERROR_NO_DEVICE"),
            (Ok(0), "sees no GPU"),
        ] {
            match choose(DeviceSpec::Auto, true, &probe) {
                Choice::Fallback(r) => assert!(r.contains(says), "{r}"),
                c => panic!("auto, cuda build, no GPU: {c:?}"),
            }
            for n in [0, 1] {
                match choose(DeviceSpec::Cuda(n), true, &probe) {
                    Choice::Unavailable(r) => {
                        assert!(
                            r.starts_with(&format!("cuda:{n}: ")) && r.contains(says),
                            "{r}"
                        );
                    }
                    c => panic!("cuda:{n}, cuda build, no GPU: {c:?}"),
                }
            }
            assert_eq!(choose(DeviceSpec::Cpu, true, &probe), Choice::Cpu);
        }
    }

    #[test]
    fn choose_cuda_build_with_gpus() {
        let two = Ok(2);
        assert_eq!(choose(DeviceSpec::Auto, true, &two), Choice::Cuda(0));
        assert_eq!(choose(DeviceSpec::Cuda(0), true, &two), Choice::Cuda(0));
        assert_eq!(choose(DeviceSpec::Cuda(1), true, &two), Choice::Cuda(1));
        assert_eq!(choose(DeviceSpec::Cpu, true, &two), Choice::Cpu);
        // An ordinal past the last GPU is an error naming the range.
        match choose(DeviceSpec::Cuda(2), true, &two) {
            Choice::Unavailable(r) => assert!(r.contains("cuda:0 to cuda:1"), "{r}"),
            c => panic!("cuda:2 of 2: {c:?}"),
        }
    }

    #[test]
    fn open_failure_falls_back_only_for_auto() {
        match after_open_error(DeviceSpec::Auto, 0, "CUDA_ERROR_OUT_OF_MEMORY") {
            Choice::Fallback(r) => assert!(r.contains("cuda:0") && r.contains("OUT_OF_MEMORY")),
            c => panic!("{c:?}"),
        }
        match after_open_error(DeviceSpec::Cuda(1), 1, "CUDA_ERROR_OUT_OF_MEMORY") {
            Choice::Unavailable(r) => assert!(r.starts_with("cuda:1: ") && r.contains("MEMORY")),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn resolve_follows_the_build() {
        assert_eq!(device_name(&DeviceSpec::Cpu.resolve().unwrap()), "cpu");
        let auto = DeviceSpec::Auto.resolve().unwrap();
        if cfg!(feature = "cuda") {
            // Either way auto resolves; which one depends on the machine.
            assert!(auto.is_cpu() || auto.is_cuda());
        } else {
            assert!(auto.is_cpu());
            match DeviceSpec::Cuda(0).resolve() {
                Err(ModelError::DeviceUnavailable(r)) => assert!(r.contains("no `cuda` feature")),
                other => panic!("explicit cuda in a CPU build: {other:?}"),
            }
        }
    }

    /// A log sink for one test thread.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn auto_logs_one_line_saying_which_or_why() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let d =
            tracing::subscriber::with_default(subscriber, || DeviceSpec::Auto.resolve()).unwrap();
        let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("device auto")).collect();
        assert_eq!(lines.len(), 1, "{log}");
        if d.is_cuda() {
            assert!(
                lines[0].contains("using CUDA") && lines[0].contains("gpu="),
                "{log}"
            );
        } else {
            assert!(lines[0].contains("device=\"cpu\"") || lines[0].contains("device=cpu"));
            assert!(lines[0].contains("reason="), "{log}");
            if !cfg!(feature = "cuda") {
                assert!(lines[0].contains("no `cuda` feature"), "{log}");
            }
        }
    }

    /// Runs a small forward and backward pass (matmul, RePU, reductions) on
    /// [`test_device`] and on the CPU, and compares. With `LINEWATCH_TEST_DEVICE=cuda` this is
    /// the GPU smoke test: the device must open, `auto` must pick it, and the numbers must
    /// agree with the CPU's to f32 reduction-order tolerance.
    #[test]
    fn test_device_agrees_with_cpu() {
        let dev = test_device();
        if dev.is_cuda() {
            assert!(
                DeviceSpec::Auto.resolve().unwrap().is_cuda(),
                "auto must pick the GPU"
            );
            assert!(device_name(&dev).starts_with("cuda:"));
        }
        let run = |d: &Device| -> (f32, Vec<f32>) {
            let x: Vec<f32> = (0..256 * 16)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w0: Vec<f32> = (0..16 * 8)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 10.0)
                .collect();
            let x = Tensor::from_vec(x, (256, 16), d).unwrap();
            let w = Var::from_tensor(&Tensor::from_vec(w0, (16, 8), d).unwrap()).unwrap();
            // RePU of order 2, as the models use: relu(h)^2.
            let h = x
                .matmul(w.as_tensor())
                .unwrap()
                .relu()
                .unwrap()
                .sqr()
                .unwrap();
            let loss = h.mean_all().unwrap();
            let grads = loss.backward().unwrap();
            let g = grads.get(w.as_tensor()).unwrap();
            let g = g
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (loss.to_scalar::<f32>().unwrap(), g)
        };
        let (l_cpu, g_cpu) = run(&Device::Cpu);
        let (l_dev, g_dev) = run(&dev);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()));
        assert!(
            close(l_cpu, l_dev),
            "loss {l_cpu} (cpu) vs {l_dev} ({})",
            device_name(&dev)
        );
        assert_eq!(g_cpu.len(), g_dev.len());
        for (i, (a, b)) in g_cpu.iter().zip(&g_dev).enumerate() {
            assert!(
                close(*a, *b),
                "grad[{i}] {a} (cpu) vs {b} ({})",
                device_name(&dev)
            );
        }
    }
}
