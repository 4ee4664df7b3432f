//! The tasks the shim serves: each process's life (process.rs) and the table of tasks
//! (table.rs).

pub mod process;
pub mod table;
