//! Compute devices by name (`cpu`, `cuda[:N]`, `metal[:N]`, `vulkan[:N]`) and which backends this
//! build has. A backend that is not compiled in, or compiled in with no device present, is an
//! error that says which feature or driver is missing.

use crate::error::{Error, Result};
use candle_core::Device;

/// Where a model runs: a candle device (CPU, CUDA, Metal), or a Vulkan adapter driven by our own
/// kernels (then the image front end and the embeddings stay on the CPU).
#[derive(Debug, Clone)]
pub enum ComputeDevice {
    Candle(Device),
    #[cfg(feature = "vulkan")]
    Vulkan(std::sync::Arc<crate::vulkan::VulkanContext>),
}

impl Default for ComputeDevice {
    fn default() -> Self {
        ComputeDevice::Candle(Device::Cpu)
    }
}

impl From<Device> for ComputeDevice {
    fn from(d: Device) -> Self {
        ComputeDevice::Candle(d)
    }
}

impl ComputeDevice {
    /// A note worth printing before work starts here, if any: a Vulkan adapter that is a
    /// software rasterizer runs our kernels on the CPU, far slower than the CPU backend (on a
    /// 0.5B q4_k model, lavapipe ran prefill at 1/68 and decode at 1/65 of `--device cpu`).
    pub fn performance_note(&self) -> Option<String> {
        match self {
            ComputeDevice::Candle(_) => None,
            #[cfg(feature = "vulkan")]
            ComputeDevice::Vulkan(c) => c.info.is_software().then(|| {
                format!(
                    "vulkan:{} is {}, a software Vulkan driver on the CPU: expect it to be far \
                     slower than --device cpu (it is there to test the Vulkan path)",
                    c.info.index, c.info.name
                )
            }),
        }
    }

    /// The candle device of everything that is not on the Vulkan device (the CPU there).
    pub fn host(&self) -> Device {
        match self {
            ComputeDevice::Candle(d) => d.clone(),
            #[cfg(feature = "vulkan")]
            ComputeDevice::Vulkan(_) => Device::Cpu,
        }
    }

    /// The candle device, for work only candle can do (training).
    pub fn candle(&self) -> Result<Device> {
        match self {
            ComputeDevice::Candle(d) => Ok(d.clone()),
            #[cfg(feature = "vulkan")]
            ComputeDevice::Vulkan(_) => Err(Error::Unsupported(
                "training runs on candle devices (cpu, cuda, metal), not on vulkan".into(),
            )),
        }
    }
}

/// One backend as `monovlm devices` lists it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    /// Built into this binary (its cargo feature was on, and the platform allows it).
    pub compiled: bool,
    /// Devices found, as `--device` names (`cuda:0`, `vulkan:1`).
    pub devices: Vec<String>,
    /// What each device is (adapter name, type, driver), in `devices` order; empty where the
    /// backend does not say.
    pub details: Vec<String>,
    /// Why there are none, or how to get it.
    pub note: String,
}

fn index(spec: &str, prefix: &str) -> Result<usize> {
    match spec.strip_prefix(prefix) {
        None | Some("") => Ok(0),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("bad device `{spec}` (e.g. {prefix}:0)"))
            }),
    }
}

const CUDA_COMPILED: bool = cfg!(feature = "cuda");
const METAL_COMPILED: bool = cfg!(all(feature = "metal", target_os = "macos"));

/// Parses `--device` and opens the device.
pub fn parse_device(spec: &str) -> Result<ComputeDevice> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu.into());
    }
    if spec.starts_with("cuda") {
        let n = index(&spec, "cuda")?;
        if !CUDA_COMPILED {
            return Err(Error::Unsupported(format!(
                "device {spec}: this build has no CUDA backend (rebuild with `--features cuda`, which needs nvcc: the CUDA toolkit, or scripts/cuda-toolchain.sh)"
            )));
        }
        return Device::new_cuda(n).map(Into::into).map_err(|e| {
            Error::Unsupported(format!(
                "device {spec}: {e} (no NVIDIA GPU or driver found?)"
            ))
        });
    }
    if spec.starts_with("metal") {
        let n = index(&spec, "metal")?;
        if !METAL_COMPILED {
            return Err(Error::Unsupported(format!(
                "device {spec}: this build has no Metal backend (macOS only; rebuild with `--features metal`)"
            )));
        }
        return Device::new_metal(n)
            .map(Into::into)
            .map_err(|e| Error::Unsupported(format!("device {spec}: {e}")));
    }
    if spec.starts_with("vulkan") {
        let n = index(&spec, "vulkan")?;
        return open_vulkan(&spec, n);
    }
    Err(Error::InvalidArgument(format!(
        "unknown device `{spec}` (cpu, cuda[:N], metal[:N], vulkan[:N])"
    )))
}

#[cfg(feature = "vulkan")]
fn open_vulkan(spec: &str, n: usize) -> Result<ComputeDevice> {
    crate::vulkan::VulkanContext::open(n)
        .map(ComputeDevice::Vulkan)
        .map_err(|e| match e {
            Error::Unsupported(m) => Error::Unsupported(format!("device {spec}: {m}")),
            other => other,
        })
}

#[cfg(not(feature = "vulkan"))]
fn open_vulkan(spec: &str, _n: usize) -> Result<ComputeDevice> {
    Err(Error::Unsupported(format!(
        "device {spec}: this build has no Vulkan backend (rebuild with `--features vulkan`)"
    )))
}

/// The Vulkan adapters, as `vulkan:N: name (type, driver)`.
#[cfg(feature = "vulkan")]
fn vulkan_backend() -> Backend {
    let adapters = crate::vulkan::adapters();
    let devices = adapters
        .iter()
        .map(|a| format!("vulkan:{}", a.index))
        .collect();
    let details = adapters
        .iter()
        .map(|a| format!("{} ({}, driver {})", a.name, a.device_type, a.driver))
        .collect();
    let note = if adapters.is_empty() {
        crate::vulkan::NO_ADAPTER.to_string()
    } else {
        String::new()
    };
    Backend {
        name: "vulkan",
        compiled: true,
        devices,
        details,
        note,
    }
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_backend() -> Backend {
    Backend {
        name: "vulkan",
        compiled: false,
        devices: Vec::new(),
        details: Vec::new(),
        note: "not compiled in (`--features vulkan`)".into(),
    }
}

/// Name and memory of a CUDA device, as the driver reports them.
#[cfg(feature = "cuda")]
fn describe_cuda(d: &Device) -> String {
    let Ok(cuda) = d.as_cuda_device() else {
        return String::new();
    };
    let context = cuda.cuda_stream().context().clone();
    let name = context.name().unwrap_or_else(|_| "CUDA device".into());
    match context.mem_get_info() {
        Ok((free, total)) => format!(
            "{name}, {} memory ({} free)",
            crate::memory::human(total as u64),
            crate::memory::human(free as u64)
        ),
        Err(_) => name,
    }
}

/// A GPU backend: its devices `name:0`, `name:1`, … up to the first that fails to open, each
/// described by `describe` (empty where the backend does not say).
fn probe(
    name: &'static str,
    compiled: bool,
    open: fn(usize) -> candle_core::Result<Device>,
    describe: fn(&Device) -> String,
    not_compiled: &str,
) -> Backend {
    if !compiled {
        return Backend {
            name,
            compiled,
            devices: Vec::new(),
            details: Vec::new(),
            note: not_compiled.into(),
        };
    }
    let mut devices = Vec::new();
    let mut details = Vec::new();
    let mut note = String::new();
    for i in 0..16 {
        match open(i) {
            Ok(d) => {
                devices.push(format!("{name}:{i}"));
                details.push(describe(&d));
            }
            Err(e) => {
                if devices.is_empty() {
                    note = format!("no device: {e}");
                }
                break;
            }
        }
    }
    if details.iter().all(String::is_empty) {
        details.clear();
    }
    Backend {
        name,
        compiled,
        devices,
        details,
        note,
    }
}

/// Every backend, compiled in or not, with the devices it finds.
pub fn backends() -> Vec<Backend> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cpu = format!("cpu: {cores} threads ({})", std::env::consts::ARCH);
    if let Some((total, available)) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| crate::memory::total_and_available(&m))
    {
        cpu.push_str(&format!(
            ", {} memory ({} available)",
            crate::memory::human(total),
            crate::memory::human(available)
        ));
    }
    let mut out = vec![Backend {
        name: "cpu",
        compiled: true,
        devices: vec![cpu],
        details: Vec::new(),
        note: String::new(),
    }];
    #[cfg(feature = "cuda")]
    let describe: fn(&Device) -> String = describe_cuda;
    #[cfg(not(feature = "cuda"))]
    let describe: fn(&Device) -> String = |_| String::new();
    out.push(probe(
        "cuda",
        CUDA_COMPILED,
        Device::new_cuda,
        describe,
        "not compiled in (`--features cuda`, needs nvcc: the CUDA toolkit or scripts/cuda-toolchain.sh)",
    ));
    out.push(probe(
        "metal",
        METAL_COMPILED,
        Device::new_metal,
        |_| String::new(),
        "not compiled in (macOS with `--features metal`)",
    ));
    out.push(vulkan_backend());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_missing_backends_say_why() {
        let cpu = |d: Result<ComputeDevice>| matches!(d, Ok(ComputeDevice::Candle(Device::Cpu)));
        assert!(cpu(parse_device("cpu")));
        assert!(cpu(parse_device(" CPU ")));
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device") && e.contains("vulkan"), "{e}");
        let e = parse_device("cuda:x").unwrap_err().to_string();
        assert!(e.contains("bad device"), "{e}");
        if !CUDA_COMPILED {
            let e = parse_device("cuda:1").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
        if !METAL_COMPILED {
            let e = parse_device("metal").unwrap_err().to_string();
            assert!(e.contains("--features metal"), "{e}");
        }
        if !cfg!(feature = "vulkan") {
            let e = parse_device("vulkan:0").unwrap_err().to_string();
            assert!(e.contains("--features vulkan"), "{e}");
        }
        let e = parse_device("vulkan:x").unwrap_err().to_string();
        assert!(e.contains("bad device"), "{e}");
        let b = backends();
        assert_eq!(
            b.iter().map(|b| b.name).collect::<Vec<_>>(),
            ["cpu", "cuda", "metal", "vulkan"]
        );
        assert!(b[0].compiled && b[0].devices.len() == 1);
    }
}
