//! The tasks the shim serves: each process's life (process.rs).

pub mod process;
