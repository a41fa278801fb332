//! What the numbers were measured on, and whether this process may open enough sockets.
//!
//! The machine line names the CPUs the generator may use (`available_parallelism`, which
//! honours `taskset`), the CPU model (`model name` of `/proc/cpuinfo`), the kernel release
//! (`/proc/sys/kernel/osrelease`) and the CPU list the
//! process is pinned to (`Cpus_allowed_list` of `/proc/self/status`) when that is narrower
//! than the online CPUs. The fd check reads the `Max open files` limits (soft, hard) of
//! `/proc/self/limits`; the generator cannot raise it itself, so it stops early with a message
//! telling the user to run `ulimit -n` first.

use std::fs;

/// One line describing the machine, printed before any result.
pub fn line() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let pinned = pinned_cpus().unwrap_or_else(|| "no".into());
    let cpu = cpu_model().unwrap_or_else(|| "unknown".into());
    format!("machine: nproc={nproc} cpu=\"{cpu}\" kernel={kernel} pinned={pinned}")
}

/// The `model name` of the first CPU in `/proc/cpuinfo`.
fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

/// The allowed CPU list when it is narrower than the online CPUs.
fn pinned_cpus() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_owned();
    let online = fs::read_to_string("/sys/devices/system/cpu/online").ok();
    match online {
        Some(online) if online.trim() == allowed => None,
        _ => Some(allowed),
    }
}

/// The soft and hard limits on open files; `None` stands for unlimited.
fn open_files_limits() -> Option<(Option<u64>, Option<u64>)> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line.trim_start_matches("Max open files").split_whitespace();
    let soft = values.next()?.parse().ok();
    let hard = values.next()?.parse().ok();
    Some((soft, hard))
}

/// Fails when the soft fd limit is below `needed`, saying how to raise it.
pub fn check_fd_limit(needed: u64) -> Result<(), String> {
    let Some((Some(soft), hard)) = open_files_limits() else {
        return Ok(());
    };
    if soft >= needed {
        return Ok(());
    }
    let advice = match hard {
        Some(hard) if hard < needed => format!(
            "the hard limit is {hard}, so raise it first (limits.conf, systemd LimitNOFILE or \
             `prlimit`), then run `ulimit -n {needed}`"
        ),
        Some(hard) => format!(
            "run `ulimit -n {}` in this shell first",
            hard.min(needed.max(65_536))
        ),
        None => format!("run `ulimit -n {}` in this shell first", needed.max(65_536)),
    };
    Err(format!(
        "the open-file limit is {soft} but this run needs at least {needed} \
         (sockets + setup concurrency + 100; the server needs its own share too): {advice}"
    ))
}
