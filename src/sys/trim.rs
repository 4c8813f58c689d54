//! Memory an idle daemon (a container's monitor, a bridge's dnsmasq supervisor) gives
//! back: a thousand of them idle on a full host, so every page each keeps counts.

/// Give the heap's free pages back to the kernel. A monitor is forked from rlxc-start,
/// whose heap grew with its work (configs read, the start planned); what was freed there
/// stays resident in each monitor, a thousand times over on a full host, until trimmed.
fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; 0 keeps no
    // padding at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drop this process's page-table entries for file-backed mappings it never wrote to:
/// code and read-only data of paths it ran once (start-up, a finished request). The
/// pages stay in the page cache for everyone else; touching them again is a minor fault.
/// A mapping with anonymous (copy-on-write) pages, such as relocated RELRO data, is left
/// alone, because MADV_DONTNEED would put the file's unrelocated bytes back there.
#[cfg(test)]
fn trim_file_mappings() {
    trim(false);
}

/// All an idle process can give back: the stack below the current frame, the heap's
/// free pages (after the read of smaps has freed its buffers) and the clean file
/// mappings. Nothing is allocated or freed once the code pages are dropped: every 64 KiB
/// block of code touched afterwards comes back whole (the kernel's fault-around), and
/// malloc and free alone span several.
pub fn trim_idle() {
    trim(true);
}

/// At most this many file mappings are trimmed (a process of rlxc has about twenty).
const MAX_RANGES: usize = 64;

fn trim(idle: bool) {
    let mut ranges = [(0usize, 0usize); MAX_RANGES];
    let (count, below) = {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let found = clean_file_mappings(&smaps);
        for (slot, r) in ranges.iter_mut().zip(&found) {
            *slot = *r;
        }
        let here = 0u8;
        let sp = std::hint::black_box(&here) as *const u8 as usize;
        let below = idle
            .then(|| unused_stack(&smaps, sp, page_size()))
            .flatten();
        (found.len().min(MAX_RANGES), below)
    };
    if let Some((start, len)) = below {
        // SAFETY: the range is the part of this thread's own stack mapping that lies
        // more than two pages (of the kernel's page size, so the range ends on a page
        // boundary well clear of sp) below a local of this frame: no live frame is there
        // (the calls below use far less than the margin), and a signal handler that ran
        // there has returned. Its pages come back zero-filled when the stack grows again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
    if idle {
        trim_heap();
    }
    for &(start, len) in &ranges[..count] {
        // SAFETY: the range is one of our own read-only file mappings with no private
        // page, resident or swapped out (Anonymous and Swap both 0), so dropping its PTEs
        // loses nothing: every page reads back identically from the file. Nothing in the
        // process writes to it.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// The part of the main stack mapping (`[stack]`) more than two pages below `sp`, page
/// aligned; none when `sp` is not in it (another thread's stack).
fn unused_stack(smaps: &str, sp: usize, page: usize) -> Option<(usize, usize)> {
    let line = smaps.lines().find(|l| l.ends_with("[stack]"))?;
    let (a, b) = line.split_whitespace().next()?.split_once('-')?;
    let (start, end) = (
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    );
    if !(start..end).contains(&sp) {
        return None;
    }
    let top = (sp & !(page - 1)).checked_sub(2 * page)?;
    (top > start).then(|| (start, top - start))
}

/// Ranges of read-only, private, file-backed mappings with no private page (none
/// resident, none swapped out: a relocated page of RELRO data that went to swap shows
/// only as Swap), from the text of /proc/self/smaps.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    /// A candidate mapping and what its Anonymous and Swap lines said so far.
    struct Candidate {
        range: (usize, usize),
        anon_none: Option<bool>,
        swap_none: Option<bool>,
    }
    let mut out = Vec::new();
    let mut cur: Option<Candidate> = None;
    let mut finish = |c: Option<Candidate>| {
        if let Some(c) = c {
            if c.anon_none == Some(true) && c.swap_none == Some(true) {
                out.push(c.range);
            }
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else {
            continue;
        };
        if let Some((a, b)) = first.split_once('-') {
            finish(cur.take());
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let (perms, inode) = (f.next(), f.nth(2));
            if let (Some(perms), Some(inode)) = (perms, inode) {
                if inode != "0"
                    && perms.starts_with('r')
                    && perms.ends_with('p')
                    && !perms.contains('w')
                    && b > a
                {
                    cur = Some(Candidate {
                        range: (a, b - a),
                        anon_none: None,
                        swap_none: None,
                    });
                }
            }
        } else if let Some(c) = cur.as_mut() {
            match first {
                "Anonymous:" => c.anon_none = Some(f.next() == Some("0")),
                "Swap:" => c.swap_none = Some(f.next() == Some("0")),
                _ => {}
            }
        }
    }
    finish(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_file_mappings_are_trimmed() {
        let smaps = "\
55d0a000-55d0b000 r--p 00000000 fe:01 12 /usr/bin/x
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
55d0b000-55d0d000 r-xp 00001000 fe:01 12 /usr/bin/x
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
SwapPss:               0 kB
55d0d000-55d0e000 rw-p 00003000 fe:01 12 /usr/bin/x
Anonymous:             0 kB
Swap:                  0 kB
55d0e000-55d0f000 r--p 00004000 fe:01 12 /usr/bin/x
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  4 kB
7f00000-7f01000 rw-p 00000000 00:00 0 [heap]
Anonymous:             4 kB
7f10000-7f12000 r--s 00000000 fe:01 13 /dev/shm/y
Anonymous:             0 kB
Swap:                  0 kB
7f20000-7f21000 r--p 00000000 00:00 0 [vvar]
Anonymous:             0 kB
Swap:                  0 kB
7f30000-7f31000 r--p 00000000 fe:01 14 /usr/lib/no-swap-line.so
Anonymous:             0 kB
";
        // The relocated page that went to swap (Anonymous 0, Swap 4) is kept, and so is a
        // mapping whose swap is not told.
        assert_eq!(clean_file_mappings(smaps), vec![(0x55d0b000, 0x2000)]);
    }

    #[test]
    fn trimming_keeps_the_process_working() {
        trim_file_mappings();
        // Code and read-only data fault back in from the files.
        assert_eq!(format!("{}", 6 * 7), "42");
        assert!(std::fs::read_to_string("/proc/self/smaps").is_ok_and(|s| s.contains("Rss:")));
    }

    #[test]
    fn only_the_main_stack_below_the_margin_is_dropped() {
        let smaps =
            "7ffd4ed91000-7ffd4edb2000 rw-p 00000000 00:00 0                          [stack]\n";
        // Two pages below the page of sp, down to the start of the mapping.
        assert_eq!(
            unused_stack(smaps, 0x7ffd4eda0123, 4096),
            Some((0x7ffd4ed91000, 0x7ffd4ed9e000 - 0x7ffd4ed91000))
        );
        // 16 KiB pages: the range ends two of those below sp's, on a page boundary.
        assert_eq!(
            unused_stack(smaps, 0x7ffd4eda0123, 16384),
            Some((0x7ffd4ed91000, 0x7ffd4ed98000 - 0x7ffd4ed91000))
        );
        // Too close to the bottom: nothing.
        assert_eq!(unused_stack(smaps, 0x7ffd4ed92010, 4096), None);
        // Another thread's stack is not in [stack].
        assert_eq!(unused_stack(smaps, 0x7f0000001000, 4096), None);
        assert_eq!(unused_stack("", 0x7ffd4eda0123, 4096), None);
        assert_eq!(page_size() % 4096, 0);
    }

    #[test]
    fn trimming_everything_keeps_the_process_working() {
        trim_idle();
        assert_eq!(format!("{}", 6 * 7), "42");
        let v: Vec<u64> = (0..10_000).collect();
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
    }
}
