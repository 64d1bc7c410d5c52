//! The loaded image of this program: which address ranges it maps, and how.
#![allow(unsafe_code)]

use std::ffi::c_int;

/// One loaded segment (`PT_LOAD`) of an object of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First address of the segment.
    pub(crate) start: usize,
    /// One past its last address.
    pub(crate) end: usize,
    /// Mapped readable.
    pub(crate) readable: bool,
    /// Mapped executable.
    pub(crate) executable: bool,
    /// Never written once the program runs: mapped without write access,
    /// or made read-only after relocation (`PT_GNU_RELRO`).
    pub(crate) read_only: bool,
}

struct Search {
    addr: usize,
    found: Vec<Segment>,
}

extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: usize, data: *mut libc::c_void) -> c_int {
    // SAFETY: `data` is the `&mut Search` that `segments_of_object` passed to
    // `dl_iterate_phdr`, which hands it back unchanged to this callback and
    // runs the callback on the calling thread only, while that borrow lives.
    let search = unsafe { &mut *data.cast::<Search>() };
    // SAFETY: glibc passes a valid `dl_phdr_info` for the duration of the
    // call, whose `dlpi_phdr` points at `dlpi_phnum` program headers.
    let (base, headers) = unsafe {
        let info = &*info;
        let count = usize::from(info.dlpi_phnum);
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() || count == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(info.dlpi_phdr.cast(), count)
        };
        (info.dlpi_addr as usize, headers)
    };
    let range = |h: &libc::Elf64_Phdr| {
        let start = base.wrapping_add(h.p_vaddr as usize);
        (start, start.wrapping_add(h.p_memsz as usize))
    };
    let mut loads: Vec<Segment> = headers
        .iter()
        .filter(|h| h.p_type == libc::PT_LOAD)
        .map(|h| {
            let (start, end) = range(h);
            Segment {
                start,
                end,
                readable: h.p_flags & libc::PF_R != 0,
                executable: h.p_flags & libc::PF_X != 0,
                read_only: h.p_flags & libc::PF_W == 0,
            }
        })
        .collect();
    let relro = headers.iter().filter(|h| h.p_type == libc::PT_GNU_RELRO).map(|h| {
        let (start, end) = range(h);
        Segment { start, end, readable: true, executable: false, read_only: true }
    });
    let relro: Vec<Segment> = relro.collect();
    if loads.iter().any(|s| (s.start..s.end).contains(&search.addr)) {
        loads.extend(relro);
        search.found = loads;
        1
    } else {
        0
    }
}

/// The loaded segments of the object (executable or library) that contains
/// `addr`: empty if no loaded object contains it.
pub(crate) fn segments_of_object(addr: usize) -> Vec<Segment> {
    let mut search = Search { addr, found: Vec::new() };
    // SAFETY: `visit` matches the callback type and only touches `search`
    // through the pointer passed here, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast());
    }
    search.found
}

#[cfg(test)]
mod tests {
    use super::*;

    static DATA: [u64; 2] = [1, 2];

    #[test]
    fn this_programs_code_and_data_are_in_its_segments() {
        let code = this_programs_code_and_data_are_in_its_segments as fn() as usize;
        let segments = segments_of_object(code);
        assert!(segments.iter().any(|s| s.executable && (s.start..s.end).contains(&code)));
        let data = DATA.as_ptr() as usize;
        assert!(segments.iter().any(|s| !s.executable && (s.start..s.end).contains(&data)));
        assert!(segments_of_object(8).is_empty());
    }
}
