//! The allocator. The `ringmq` binary uses mimalloc (its global allocator is set in
//! `src/bin/ringmq.rs`); the library only asks it, now and then, to hand memory
//! back to the OS.

/// Returns the calling thread's free mimalloc pages to the OS. A shard calls it
/// after many of its connections parked: mimalloc would otherwise keep what their
/// tasks freed until it next allocates enough to purge, which an idle shard never
/// does. It walks the thread's heap, so it is called seldom. Where mimalloc is not
/// the global allocator (tests), its heap is empty and this does nothing.
pub fn release_free_memory() {
    // SAFETY: collects the calling thread's mimalloc heap; it touches no memory
    // the program uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
