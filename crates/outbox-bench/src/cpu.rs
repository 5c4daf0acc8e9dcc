//! Processor time spent by processes, read from Linux's `/proc`: what a
//! drain costs the whole machine, not only the wall clock it takes. On a
//! machine with few cores the processes of a drain (the browser's, the
//! emulator's) share them, so a drain's rate is bounded by the processor
//! time it spends per message: `cores × 1,000 ms ÷ (ms per message)`.
//!
//! Times are user plus system, in the kernel's clock ticks (`USER_HZ`,
//! 100 a second on Linux whatever the kernel's own rate: 10 ms a tick),
//! and include children that ended and were waited for (a browser's
//! renderer that exited counts in its parent).

use std::collections::HashMap;

/// Milliseconds in one clock tick of `/proc/<pid>/stat` (`USER_HZ` = 100).
const MS_PER_TICK: f64 = 10.0;

/// One process's `/proc/<pid>/stat`: its parent, and its processor time
/// with its waited-for children's, ms.
fn stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    // utime, stime, cutime, cstime: fields 14 to 17 of the line.
    let ticks: f64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    Some((ppid, ticks * MS_PER_TICK))
}

/// Processor time of `root` and every process descended from it, ms
/// (`None` where `/proc` cannot be read).
pub fn tree_ms(root: u32) -> Option<f64> {
    let mut by_parent: HashMap<u32, Vec<(u32, f64)>> = HashMap::new();
    let mut root_ms = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((ppid, ms)) = stat(pid) else {
            continue;
        };
        if pid == root {
            root_ms = Some(ms);
        }
        by_parent.entry(ppid).or_default().push((pid, ms));
    }
    let mut total = root_ms?;
    let mut open = vec![root];
    while let Some(parent) = open.pop() {
        for &(pid, ms) in by_parent.get(&parent).map_or(&[][..], Vec::as_slice) {
            total += ms;
            open.push(pid);
        }
    }
    Some(total)
}

/// Processor time of this process (all its threads), ms.
pub fn own_ms() -> Option<f64> {
    stat(std::process::id()).map(|(_, ms)| ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_counts_the_work_it_does() {
        let Some(before) = own_ms() else {
            return; // not Linux
        };
        // Tens of milliseconds of arithmetic or more: processor time, whatever the load.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(own_ms().unwrap() >= before + 20.0, "{x}");
        assert!(tree_ms(std::process::id()).unwrap() >= own_ms().unwrap());
    }
}
