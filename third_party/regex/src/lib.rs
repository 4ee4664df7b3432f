//! The `regex` API our dependencies use, served by `regex-lite` (see Cargo.toml for why).

pub use regex_lite::*;
