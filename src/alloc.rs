//! The allocator. The `ringmq` binary uses mimalloc (its global allocator is set in
//! `src/bin/ringmq.rs`); the library only asks it, now and then, to hand memory
//! back to the OS.

/// Whether the kernel may back this process's memory with transparent huge pages
/// (`prctl(PR_SET_THP_DISABLE)`, for the whole process, from the next page fault
/// on). mimalloc asks for huge pages on its arenas; a 2 MiB page stays resident
/// while any of it is in use, which keeps most of what parked connections free.
pub fn set_transparent_huge_pages(allowed: bool) {
    // SAFETY: plain system call on this process's own flag.
    unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            libc::c_ulong::from(!allowed),
            0,
            0,
            0,
        )
    };
}

/// Lets mimalloc return the calling thread's free pages to the OS. A shard calls it
/// after many of its connections parked: mimalloc purges freed memory only after
/// a delay and only when it next runs, which an idle shard does not. A normal (not
/// forced) collection suffices and skips full pages. Where mimalloc is not the
/// global allocator (tests), its heap is empty and this does nothing.
pub fn release_free_memory() {
    // SAFETY: collects the calling thread's mimalloc heap; it touches no memory
    // the program uses.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
