//! `youki`: an OCI container runtime command line with runc's commands and flags.

mod cli;
mod commands;
mod foreground;
mod logger;
mod run;

use clap::Parser;

/// What `--version` prints, in runc's layout.
pub const VERSION_TEXT: &str = concat!(
    "youki version ",
    env!("CARGO_PKG_VERSION"),
    "\nspec: ",
    "1.2.0"
);

fn main() {
    let cli = cli::Cli::parse();
    if cli.version {
        println!("{VERSION_TEXT}");
        return;
    }
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    match commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // runc reports a failure both in its log (which containerd and podman read)
            // and on stderr.
            log::error!("{e:#}");
            log::logger().flush();
            eprintln!("youki: {e:#}");
            std::process::exit(1);
        }
    }
}
