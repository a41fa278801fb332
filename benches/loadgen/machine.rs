//! What the numbers were measured on, and whether this process may open enough sockets.
//!
//! The machine line names the online CPUs (`/sys/devices/system/cpu/online`), how many of
//! them the generator may use (`available_parallelism`, which honours `taskset`), the CPU
//! model (`model name` of `/proc/cpuinfo`), the kernel release (`/proc/sys/kernel/osrelease`)
//! and the CPU list the process is pinned to (`Cpus_allowed_list` of `/proc/self/status`)
//! when that is narrower than the online CPUs. The fd check reads the `Max open files` limits (soft, hard) of
//! `/proc/self/limits`; the generator cannot raise it itself, so it stops early with a message
//! telling the user to run `ulimit -n` first.
//!
//! When the server runs on this machine, its line names the server's process and the CPUs it
//! is pinned to (found through the listening socket: its inode in `/proc/net/tcp*`, then the
//! process holding that inode among `/proc/*/fd`). The fsync probe times synchronous 4 KiB
//! writes in a directory on the server's data disk, since a durable server can commit no
//! faster than that disk syncs.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One line describing the machine, printed before any result.
pub fn line() -> String {
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let online = fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|l| count_cpus(l.trim()))
        .unwrap_or(usable);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let pinned = pinned_cpus().unwrap_or_else(|| "no".into());
    let cpu = cpu_model().unwrap_or_else(|| "unknown".into());
    format!(
        "machine: nproc={online} (generator may use {usable}) cpu=\"{cpu}\" kernel={kernel} pinned={pinned}"
    )
}

/// The number of CPUs in a list such as `0-3,6,8-9`.
fn count_cpus(list: &str) -> Option<usize> {
    list.split(',').try_fold(0, |n, part| {
        let count = match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse::<usize>().ok()?)? + 1,
            None => part.parse::<usize>().map(|_| 1).ok()?,
        };
        Some(n + count)
    })
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

/// The process listening on this machine at `url`'s port, when this user may see it.
pub fn server_pid(url: &str) -> Option<u32> {
    let port = url
        .rsplit(':')
        .next()
        .map(|p| p.trim_end_matches('/'))
        .and_then(|p| p.parse::<u16>().ok())?;
    listening_inode(port).and_then(|inode| process_of(&inode))
}

/// User plus system CPU time process `pid` has used, seconds (`utime` and `stime`, fields
/// 14 and 15 of `/proc/<pid>/stat`, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let times = parlor::metrics::proc_stat_ticks(&pid.to_string(), &[14, 15])?;
    Some(times.iter().sum())
}

/// The server's CPU time over a measured phase: read when the phase starts, and again when
/// it ends. The headline figure of a run: CPU per message or per delivery is far steadier
/// across runs and hosts than throughput or latency.
pub struct ServerCpu {
    pids: Vec<u32>,
    at_start: f64,
}

impl ServerCpu {
    /// Starts the count for `pids`, or when that is empty for the server at `url`; `None`
    /// when it is not on this machine.
    pub fn start(url: &str, pids: &[u32]) -> Option<ServerCpu> {
        let pids = if pids.is_empty() {
            vec![server_pid(url)?]
        } else {
            pids.to_vec()
        };
        let at_start = Self::total(&pids)?;
        Some(ServerCpu { pids, at_start })
    }

    fn total(pids: &[u32]) -> Option<f64> {
        pids.iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// CPU seconds the server used since [`start`](Self::start).
    pub fn used(&self) -> Option<f64> {
        Some(Self::total(&self.pids)? - self.at_start)
    }
}

/// The server's process and pinning, when it listens on this machine at `url`'s port.
pub fn server_line(url: &str) -> String {
    match server_pid(url) {
        Some(pid) => {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map_or("unknown", str::trim);
            let generator = pinned_cpus().unwrap_or_else(|| "all".into());
            let apart = if cpus != generator && pinned_cpus().is_some() {
                "different CPUs"
            } else {
                "NOT pinned apart"
            };
            format!("server: pid={pid} cpus={cpus} generator cpus={generator} ({apart})")
        }
        None => "server: not found on this machine (pinning unknown)".into(),
    }
}

/// The inode of the socket listening on `port` (`/proc/net/tcp` and `tcp6`, state `0A`).
fn listening_inode(port: u16) -> Option<String> {
    let hex_port = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols.get(1)?.rsplit(':').next()?;
            (local_port == hex_port && cols.get(3) == Some(&"0A"))
                .then(|| cols.get(9).map(|s| s.to_string()))?
        })
    })
}

/// The process holding the socket with `inode` among the ones this user may inspect.
fn process_of(inode: &str) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let fds = fs::read_dir(entry.path().join("fd")).ok()?;
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()))
            .then_some(pid)
    })
}

/// Times `count` synchronous 4 KiB writes (`fdatasync` after each) in `dir`; one line.
pub fn fsync_probe(dir: &Path, count: usize) -> String {
    let path = dir.join(format!(".loadgen-fsync-probe-{}", std::process::id()));
    let result = (|| -> std::io::Result<Vec<f64>> {
        let mut file = fs::File::create(&path)?;
        let block = [0u8; 4096];
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            let t = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(times)
    })();
    let _ = fs::remove_file(&path);
    match result {
        Ok(mut times) if !times.is_empty() => {
            times.sort_by(f64::total_cmp);
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
            format!(
                "fsync probe: {} x 4 KiB write+fdatasync in {}: mean {mean:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
                times.len(),
                dir.display(),
                times[times.len() - 1]
            )
        }
        Ok(_) => "fsync probe: skipped".into(),
        Err(e) => format!("fsync probe: failed in {}: {e}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::count_cpus;

    #[test]
    fn counts_cpu_lists() {
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus("0-1"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("3-1"), None);
        assert_eq!(count_cpus("x"), None);
    }
}
