//! The peak RSS of a child process, sampled from /proc: shared by the
//! integration tests and `make bench`.

/// Samples a process's own peak RSS (VmHWM, KiB) until it is gone. Not
/// wait4's ru_maxrss: that counts the forked copy of this big test
/// process before exec.
pub fn peak_rss_sampler(pid: u32, kill_above_kib: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status.lines().find_map(|line| line.strip_prefix("VmHWM:"));
            let Some(hwm) = hwm else { break }; // a zombie has no memory left
            let kib: u64 = hwm
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            peak = peak.max(kib);
            if kib > kill_above_kib {
                // SAFETY: plain syscall on the test's own unreaped child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        peak
    })
}
