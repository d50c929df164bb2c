//! What the operating system gives a child: its own process group (killed as a whole), a
//! parent-death signal, CPU pinning (a cgroup v2 cpuset, else affinity), and its output read one
//! bounded line at a time.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tracing::{info, warn};

/// How `read_line` ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// `buf` holds a whole line, without its `\n` (or `\r\n`).
    Whole,
    /// `buf` holds the first `max` bytes of a longer line; the rest is still unread.
    TooLong,
    /// The stream ended (a last line without `\n` counts as `Whole` first).
    Eof,
}

/// Reads one line into `buf` (appending), never holding more than `max` bytes of it.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Whole
            });
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if buf.len() + take.min(newline.unwrap_or(usize::MAX)) > max {
            let room = max - buf.len();
            buf.extend_from_slice(&chunk[..room]);
            r.consume(room);
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(take);
        if newline.is_some() {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Whole);
        }
    }
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// SIGKILL to the child's whole process group.
pub fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The child gets SIGKILL when the worker dies, even by SIGKILL, so no processor outlives it.
#[allow(unsafe_code)]
pub(super) fn set_parent_death_signal(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// How a child was pinned to its cpuset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// Pinned through a cgroup v2 cpuset at this path.
    Cgroup(std::path::PathBuf),
    /// Pinned with CPU affinity (no cpuset controller).
    Affinity,
    /// Not pinned: why.
    Failed(String),
}

/// Pins `pid` to `cpuset`: a cgroup v2 cpuset where the unified cgroup tree offers the cpuset
/// controller and is writable, otherwise CPU affinity. Logs which one was used.
pub fn pin_to_cpuset(cgroup_root: &std::path::Path, name: &str, pid: u32, cpuset: &str) -> Pinning {
    let group = cgroup_root.join(format!(
        "damocles-worker/sub-{}-{}-{pid}",
        name.replace('#', "-"),
        std::process::id()
    ));
    let via_cgroup = (|| -> std::io::Result<()> {
        // A cgroup v1 host (or a plain directory) also lets us create files: only the kernel's
        // own cgroup.controllers and cpuset.cpus prove this is a v2 tree with cpusets.
        let controllers = std::fs::read_to_string(cgroup_root.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "cpuset") {
            return Err(std::io::Error::other(
                "no cpuset controller in the cgroup v2 tree",
            ));
        }
        std::fs::create_dir_all(&group)?;
        if !group.join("cpuset.cpus").exists() {
            return Err(std::io::Error::other(
                "cpuset controller not enabled for our cgroup",
            ));
        }
        std::fs::write(group.join("cpuset.cpus"), cpuset)?;
        std::fs::write(group.join("cgroup.procs"), pid.to_string())?;
        Ok(())
    })();
    match via_cgroup {
        Ok(()) => {
            info!(processor = %name, pid, cpuset, cgroup = %group.display(), "pinned with a cgroup v2 cpuset");
            Pinning::Cgroup(group)
        }
        Err(e) => {
            let _ = std::fs::remove_dir(&group);
            match set_affinity(pid, cpuset) {
                Ok(()) => {
                    info!(processor = %name, pid, cpuset, cgroup_error = %e, "pinned with CPU affinity (no usable cgroup v2 cpuset)");
                    Pinning::Affinity
                }
                Err(e2) => {
                    warn!(processor = %name, pid, cpuset, error = %e2, "cannot pin processor to its cpuset");
                    Pinning::Failed(e2)
                }
            }
        }
    }
}

fn set_affinity(pid: u32, cpuset: &str) -> Result<(), String> {
    let cpus = parse_cpuset(cpuset)?;
    let mut set = nix::sched::CpuSet::new();
    for c in cpus {
        set.set(c).map_err(|e| format!("cpu {c}: {e}"))?;
    }
    let pid = i32::try_from(pid).map_err(|e| e.to_string())?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set).map_err(|e| e.to_string())
}

/// Parses `0-3,8,10-11` into CPU numbers.
pub fn parse_cpuset(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad cpuset {s:?}: expected a list like 0-3,8");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(format!("bad cpuset {s:?}: it names no CPU"));
    }
    Ok(out)
}
