//! The machine every figure was measured on.

use std::fs;

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
    /// `kernel.bpf_stats_enabled` and the JIT are part of what is measured.
    pub bpf_jit_enabled: bool,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, m)| m.trim().to_string());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_string());
        let memory_gib = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        let bpf_jit_enabled =
            fs::read_to_string("/proc/sys/net/core/bpf_jit_enable").is_ok_and(|s| s.trim() != "0");
        Machine {
            cpu_model,
            cores,
            kernel,
            memory_gib,
            bpf_jit_enabled,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), kernel {}, {:.0} GiB RAM, BPF JIT {}",
            self.cores,
            self.cpu_model,
            self.kernel,
            self.memory_gib,
            if self.bpf_jit_enabled { "on" } else { "off" }
        )
    }
}

/// The 1, 5 and 15 minute load averages: on a shared machine the figures
/// move with them.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
