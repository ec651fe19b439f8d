//! The `iplock` command as a library: loading, pinning and reading the XDP
//! knock filter. `main.rs` is only the argument parser's entry point.

pub mod object;
