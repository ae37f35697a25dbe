//! The Vulkan device: adapter selection (`vulkan[:N]`), device creation with the adapter's own
//! limits (weights of 7B models exceed WebGPU's default 128 MiB storage binding), and the error
//! slot that turns wgpu's asynchronous validation and out-of-memory reports into our errors.

use super::kernels::Kernels;
use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

/// What `monovlm devices` shows about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    /// Position in [`adapters`]'s order (`vulkan:N`).
    pub index: usize,
    pub name: String,
    /// `discrete GPU`, `integrated GPU`, `virtual GPU`, `CPU` or `other`.
    pub device_type: &'static str,
    /// Driver name and version string as the driver reports them (e.g. `llvmpipe`, `Mesa 22.3.6`).
    pub driver: String,
}

impl AdapterSummary {
    /// Whether this is a software rasterizer running on the CPU (Mesa's lavapipe, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.device_type == type_name(wgpu::DeviceType::Cpu)
    }

    /// Whether this GPU shares the host's memory.
    pub fn is_integrated(&self) -> bool {
        self.device_type == type_name(wgpu::DeviceType::IntegratedGpu)
    }
}

/// The message every "no adapter" error carries.
pub const NO_ADAPTER: &str =
    "no Vulkan adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)";

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN;
    wgpu::Instance::new(desc)
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Other => "other",
        wgpu::DeviceType::Cpu => "CPU",
    }
}

/// Vulkan adapters, real GPUs first (discrete, integrated, virtual), CPU adapters (lavapipe) last;
/// ties keep the driver's order.
fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    list.sort_by_key(|a| type_rank(a.get_info().device_type));
    list
}

fn summary(index: usize, a: &wgpu::Adapter) -> AdapterSummary {
    let info = a.get_info();
    let driver = match (info.driver.is_empty(), info.driver_info.is_empty()) {
        (false, false) => format!("{} ({})", info.driver, info.driver_info),
        (false, true) => info.driver,
        _ => info.driver_info,
    };
    AdapterSummary {
        index,
        name: info.name,
        device_type: type_name(info.device_type),
        driver,
    }
}

/// Every Vulkan adapter, in `vulkan:N` order.
pub fn adapters() -> Vec<AdapterSummary> {
    sorted_adapters(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| summary(i, a))
        .collect()
}

/// An opened Vulkan device with its compiled kernels.
pub struct VulkanContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) kernels: Kernels,
    pub(crate) limits: wgpu::Limits,
    /// Bound where a kernel's optional input (a bias) is absent.
    pub(crate) dummy: wgpu::Buffer,
    pub info: AdapterSummary,
    /// The first error wgpu reported asynchronously (validation, out of memory), taken by
    /// [`VulkanContext::check`].
    errors: Arc<Mutex<Option<String>>>,
    /// Per-kernel timing, when profiling (see [`super::profile`]).
    pub(crate) profile: Option<super::profile::Profile>,
}

impl std::fmt::Debug for VulkanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vulkan:{} ({}, {})",
            self.info.index, self.info.name, self.info.driver
        )
    }
}

impl VulkanContext {
    /// Opens adapter `index` of [`adapters`]'s order, profiling kernels when
    /// `MONOVLM_VULKAN_PROFILE=1`.
    pub fn open(index: usize) -> Result<Arc<Self>> {
        let profile = std::env::var(super::profile::PROFILE_ENV).is_ok_and(|v| v == "1");
        Self::open_with(index, profile)
    }

    /// Opens adapter `index`; with `profile`, every kernel runs on its own and is timed.
    pub fn open_with(index: usize, profile: bool) -> Result<Arc<Self>> {
        let instance = instance();
        let list = sorted_adapters(&instance);
        if list.is_empty() {
            return Err(Error::Unsupported(NO_ADAPTER.into()));
        }
        let Some(adapter) = list.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "device vulkan:{index}: this machine has {} Vulkan adapter(s), vulkan:0 to vulkan:{} \
                 (`monovlm devices` lists them)",
                list.len(),
                list.len() - 1
            )));
        };
        let info = summary(index, adapter);
        // Everything the adapter allows: storage bindings of whole weight matrices, big buffers.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("monovlm"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Vulkan(format!("{}: cannot open the device: {e}", info.name)))?;
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let slot = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut s) = slot.lock() {
                s.get_or_insert_with(|| e.to_string());
            }
        }));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("absent input"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Arc::new(VulkanContext {
            kernels: Kernels::new(),
            device,
            queue,
            limits,
            dummy,
            info,
            errors,
            profile: profile.then(super::profile::Profile::default),
        }))
    }

    /// The kernel timings gathered so far, when this context profiles.
    pub fn profile(&self) -> Option<&super::profile::Profile> {
        self.profile.as_ref()
    }

    /// Opens the first adapter, or `None` when the machine has no Vulkan driver.
    pub fn open_default() -> Result<Option<Arc<Self>>> {
        match Self::open(0) {
            Ok(c) => Ok(Some(c)),
            Err(Error::Unsupported(m)) if m == NO_ADAPTER => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Returns the error wgpu reported since the last check, if any.
    pub(crate) fn check(&self) -> Result<()> {
        let taken = self.errors.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(e) => Err(Error::Vulkan(format!("{}: {e}", self.info.name))),
            None => Ok(()),
        }
    }

    /// Largest buffer one kernel may bind.
    pub(crate) fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Blocks until the queue is idle.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Vulkan(format!("{}: {e}", self.info.name)))?;
        self.check()
    }
}
