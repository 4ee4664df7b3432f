//! The C library's allocator (glibc's malloc), which Rust's global allocator is: tunables
//! and giving free memory back to the kernel.

/// Gives the memory malloc holds free back to the kernel (malloc_trim(3) with no pad):
/// after work that left holes in the heap, which malloc's own trimming (only the heap's
/// top) keeps.
pub fn trim() {
    // SAFETY: malloc_trim only returns free pages of malloc's arenas to the kernel; it is
    // thread-safe and touches no memory in use.
    unsafe { libc::malloc_trim(0) };
}

/// Limits malloc to `arenas` arenas (mallopt(M_ARENA_MAX)) instead of one per thread;
/// false if malloc refused. Meant for the start of `main`, before threads allocate.
pub fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: mallopt only sets a malloc tunable, under malloc's own lock; it takes no
    // pointers.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}
