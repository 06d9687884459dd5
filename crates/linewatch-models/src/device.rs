//! Device selection: `auto` | `cpu` | `cuda` | `cuda:N`.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Which device models train and score on.
///
/// `Auto` picks CUDA device 0 only when this build has the `cuda` feature *and*
/// `Device::new_cuda(0)` succeeds at run time, else the CPU; the choice is logged. (We do not
/// use `Device::cuda_if_available`: it decides by the compile-time feature and, in a `cuda`
/// build on a machine without a GPU, errors instead of falling back.)
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
    /// Opens the device. `Auto` never fails (it falls back to the CPU); `Cuda(n)` fails with
    /// [`ModelError::DeviceUnavailable`] when the build lacks the `cuda` feature or the device
    /// cannot be opened.
    pub fn resolve(&self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => open_cuda(*n),
            Self::Auto => match open_cuda(0) {
                Ok(d) => {
                    tracing::info!(device = "cuda:0", "device auto: using CUDA");
                    Ok(d)
                }
                Err(e) => {
                    tracing::info!(device = "cpu", reason = %e, "device auto: using the CPU");
                    Ok(Device::Cpu)
                }
            },
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> Result<Device> {
    Device::new_cuda(n).map_err(|e| ModelError::DeviceUnavailable(format!("cuda:{n}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> Result<Device> {
    Err(ModelError::DeviceUnavailable(format!(
        "cuda:{n}: this build has no `cuda` feature"
    )))
}

/// A short name of a device for logs and metadata: `cpu`, `cuda:N`, `metal:N`.
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn auto_falls_back_to_cpu_without_gpu() {
        // In the default (no `cuda`) build auto must be the CPU and cuda must be a typed error.
        let d = DeviceSpec::Auto.resolve().unwrap();
        if !cfg!(feature = "cuda") {
            assert!(d.is_cpu());
            assert!(matches!(
                DeviceSpec::Cuda(0).resolve(),
                Err(ModelError::DeviceUnavailable(_))
            ));
        }
        assert_eq!(device_name(&DeviceSpec::Cpu.resolve().unwrap()), "cpu");
    }
}
