//! Handing back the memory only the start used.
//!
//! Most of an idle cell's resident memory is pages of its own executable, not its heap: the
//! kernel maps a page of code or constants in when it first runs, together with its
//! neighbours (fault-around, 64 KiB at a time), and keeps them mapped for the life of the
//! process. The start runs a large share of the binary once (the config parser, the store's
//! opening and checks, the first connections), so without this the idle process keeps about
//! as much of its binary resident as it started with (bench S5 and docs/FOOTPRINT.md have the
//! figures). Once the cell runs, the runtime unmaps the read-only pages (code, constants,
//! unwind tables) of its executable and of the shared libraries it loaded (the C library, the
//! dynamic linker), and returns the heap the start freed to the kernel. The pages the
//! running cell uses come back at their next use, from the page cache (a minor fault each, no
//! disk read while the binary's pages are cached), so what stays resident is what the cell
//! runs. Written pages (data, relocated pointers, the GOT, heap, stacks) are never touched.
//! An upgrade that replaces the binary on disk changes nothing here: the mapping keeps the old
//! file (its inode) until the process ends, and pages come back from it.

/// How long after READY the start's one-off work is over on a healthy cell: the first
/// connections to the devices and the broker, the first polls, the threads the runtime starts
/// on demand. Measured (S5): handed back at READY itself, the idle RSS was 1.3 MB higher
/// than handed back 2 s later. A cell that is slower to settle (a device or the
/// broker down) only keeps more pages: nothing depends on the timing but the figure.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// [`hand_back`], [`SETTLE`] after it is called (at READY).
pub async fn hand_back_when_settled() {
    tokio::time::sleep(SETTLE).await;
    let unmapped = hand_back();
    tracing::debug!(unmapped, "handed back the start's pages");
}

/// Unmaps the read-only pages of the executable and its shared libraries and trims the heap;
/// returns the bytes unmapped.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
pub fn hand_back() -> usize {
    let mut segments: Vec<(usize, usize)> = Vec::new();
    // SAFETY: the callback only reads the program headers glibc hands it, for the duration of
    // the call, and writes into `segments`, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(read_only_segments),
            (&mut segments as *mut Vec<(usize, usize)>).cast(),
        );
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut unmapped = 0;
    for (start, end) in segments {
        // Whole pages of the segment only: a page shared with a neighbour is left alone.
        let (start, end) = (start.next_multiple_of(page), end / page * page);
        if end <= start {
            continue;
        }
        // SAFETY: the range is whole pages of a segment mapped without write permission, read
        // from the file and never written (no text relocations: the RELRO part, which the
        // dynamic linker writes before making it read-only, is never in such a segment). For a
        // private file mapping MADV_DONTNEED drops the mapping of those pages; the next access
        // maps the same bytes of the file again, so no thread can see them change.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) }
            == 0
        {
            unmapped += end - start;
        }
    }
    // SAFETY: malloc_trim has no preconditions; it returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    unmapped
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
pub fn hand_back() -> usize {
    0
}

/// dl_iterate_phdr's callback, once per loaded object: collects the address ranges of the
/// loadable segments without write permission of the executable (the first object, named "")
/// and of the shared libraries (named by their path). The vDSO, which the kernel provides and
/// no file backs, has a name without a slash and is left alone.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
unsafe extern "C" fn read_only_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    segments: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info whose dlpi_phdr points at dlpi_phnum headers,
    // and `segments` is the Vec hand_back passed in.
    let (info, segments) = unsafe { (&*info, &mut *segments.cast::<Vec<(usize, usize)>>()) };
    let name = match info.dlpi_name.is_null() {
        true => &[][..],
        // SAFETY: a non-null dlpi_name is a NUL-terminated string (empty for the executable).
        false => unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes(),
    };
    if !(name.is_empty() || name.starts_with(b"/")) {
        return 0;
    }
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
    let range = |h: &libc::Elf64_Phdr| {
        let start = info.dlpi_addr as usize + h.p_vaddr as usize;
        (start, start + h.p_memsz as usize)
    };
    let relro = headers
        .iter()
        .find(|h| h.p_type == libc::PT_GNU_RELRO)
        .map(range);
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
            continue;
        }
        let (start, end) = range(h);
        if relro.is_some_and(|(rs, re)| rs < end && start < re) {
            continue;
        }
        segments.push((start, end));
    }
    0
}

#[cfg(test)]
mod tests {
    /// The test binary's own pages resident (code, constants, and its written data), in KiB.
    fn executable_resident_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_str().unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let (mut ours, mut kib) = (false, 0);
        for line in smaps.lines() {
            match line.strip_prefix("Rss:") {
                Some(v) if ours => {
                    kib += v
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap()
                }
                Some(_) => {}
                None if !line.split_whitespace().next().unwrap_or(":").ends_with(':') => {
                    ours = line.ends_with(exe)
                }
                None => {}
            }
        }
        kib
    }

    /// The pages go, and the code and constants the test runs keep working: they come back
    /// from the file at their next use.
    #[test]
    fn the_start_pages_go_and_the_code_runs_on() {
        let sum = || (1..=1000u64).map(|n| n * n).sum::<u64>();
        let before = (sum(), executable_resident_kib());
        let unmapped = super::hand_back();
        let resident = executable_resident_kib();
        assert!(unmapped > 1 << 20, "only {unmapped} bytes unmapped");
        assert!(
            resident < before.1,
            "{} KiB resident before, {resident} KiB after",
            before.1
        );
        assert_eq!(sum(), before.0);
        assert_eq!(format!("{:?}", "text"), "\"text\"");
    }
}
