//! The XDP program, built by `build.rs` and embedded in the binary.

/// The eBPF object file (ELF with BTF) of the XDP program.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/iplock"));
