//! Compute devices by name (`cpu`, `cuda[:N]`, `metal[:N]`, `vulkan[:N]`) and which backends this
//! build has. A backend that is not compiled in, or compiled in with no device present, is an
//! error that says which feature or driver is missing.

use crate::error::{Error, Result};
use candle_core::Device;

/// One backend as `monovlm devices` lists it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    /// Built into this binary (its cargo feature was on, and the platform allows it).
    pub compiled: bool,
    /// Devices found, as `name: description`.
    pub devices: Vec<String>,
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

/// Parses `--device`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    if spec.starts_with("cuda") {
        let n = index(&spec, "cuda")?;
        if !CUDA_COMPILED {
            return Err(Error::Unsupported(format!(
                "device {spec}: this build has no CUDA backend (rebuild with `--features cuda`, which needs nvcc: the CUDA toolkit, or scripts/cuda-toolchain.sh)"
            )));
        }
        return Device::new_cuda(n).map_err(|e| {
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
        return Device::new_metal(n).map_err(|e| Error::Unsupported(format!("device {spec}: {e}")));
    }
    if spec.starts_with("vulkan") {
        index(&spec, "vulkan")?;
        return Err(Error::Unsupported(format!(
            "device {spec}: monovlm has no Vulkan backend yet (CPU, and CUDA/Metal through their cargo features)"
        )));
    }
    Err(Error::InvalidArgument(format!(
        "unknown device `{spec}` (cpu, cuda[:N], metal[:N], vulkan[:N])"
    )))
}

/// A GPU backend: its devices `name:0`, `name:1`, … up to the first that fails to open.
fn probe(
    name: &'static str,
    compiled: bool,
    open: fn(usize) -> candle_core::Result<Device>,
    not_compiled: &str,
) -> Backend {
    if !compiled {
        return Backend {
            name,
            compiled,
            devices: Vec::new(),
            note: not_compiled.into(),
        };
    }
    let mut devices = Vec::new();
    let mut note = String::new();
    for i in 0..16 {
        match open(i) {
            Ok(_) => devices.push(format!("{name}:{i}")),
            Err(e) => {
                if devices.is_empty() {
                    note = format!("no device: {e}");
                }
                break;
            }
        }
    }
    Backend {
        name,
        compiled,
        devices,
        note,
    }
}

/// Every backend, compiled in or not, with the devices it finds.
pub fn backends() -> Vec<Backend> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![Backend {
        name: "cpu",
        compiled: true,
        devices: vec![format!("cpu: {cores} threads ({})", std::env::consts::ARCH)],
        note: String::new(),
    }];
    out.push(probe(
        "cuda",
        CUDA_COMPILED,
        Device::new_cuda,
        "not compiled in (`--features cuda`, needs nvcc: the CUDA toolkit or scripts/cuda-toolchain.sh)",
    ));
    out.push(probe(
        "metal",
        METAL_COMPILED,
        Device::new_metal,
        "not compiled in (macOS with `--features metal`)",
    ));
    out.push(Backend {
        name: "vulkan",
        compiled: false,
        devices: Vec::new(),
        note: "not implemented yet".into(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_missing_backends_say_why() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
        assert!(matches!(parse_device(" CPU "), Ok(Device::Cpu)));
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
        let e = parse_device("vulkan:0").unwrap_err().to_string();
        assert!(e.contains("no Vulkan backend"), "{e}");
        let b = backends();
        assert_eq!(
            b.iter().map(|b| b.name).collect::<Vec<_>>(),
            ["cpu", "cuda", "metal", "vulkan"]
        );
        assert!(b[0].compiled && b[0].devices.len() == 1);
    }
}
