//! A process's terminal on the shim's side, as the task modules name it: io::tty's
//! [`Console`] (the task modules import it from here).

pub use crate::io::tty::Console;
