//! Per-kernel timing for reading the profile before optimizing (`MONOVLM_VULKAN_PROFILE=1`):
//! every dispatch is then submitted and waited for on its own, so each kernel's figure is its
//! serial execution time on the device (plus one submit). Batching is off while it runs: the
//! totals are for finding the kernel to work on, not for throughput claims.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The variable that turns profiling on for contexts opened afterwards.
pub const PROFILE_ENV: &str = "MONOVLM_VULKAN_PROFILE";

/// Calls and total time per kernel and grid shape.
#[derive(Debug, Default)]
pub struct Profile {
    by_kernel: Mutex<BTreeMap<String, (usize, Duration)>>,
}

impl Profile {
    pub(crate) fn record(&self, label: String, took: Duration) {
        let mut map = self.by_kernel.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(label).or_default();
        entry.0 += 1;
        entry.1 += took;
    }

    /// `(kernel and grid, calls, total)`, most time first.
    pub fn rows(&self) -> Vec<(String, usize, Duration)> {
        let map = self.by_kernel.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = map.iter().map(|(k, (n, t))| (k.clone(), *n, *t)).collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        rows
    }

    /// A Markdown table of the `most` kernels that took longest.
    pub fn table(&self, most: usize) -> String {
        let rows = self.rows();
        let total: Duration = rows.iter().map(|r| r.2).sum();
        let mut s = String::from("| kernel (workgroups) | calls | total ms | share | ms per call |\n|---|---:|---:|---:|---:|\n");
        for (label, calls, took) in rows.iter().take(most) {
            let ms = took.as_secs_f64() * 1e3;
            s.push_str(&format!(
                "| {label} | {calls} | {ms:.2} | {:.1} % | {:.3} |\n",
                100.0 * took.as_secs_f64() / total.as_secs_f64().max(f64::MIN_POSITIVE),
                ms / *calls as f64
            ));
        }
        s
    }
}
