//! The bench's own XDP programs, built by `build.rs` from bench-ebpf.

/// `bench_pass`: returns XDP_PASS and does nothing else.
pub static PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-pass"));
/// `bench_drop`: returns XDP_DROP and does nothing else.
pub static DROP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-drop"));
/// `bench_gen`: the live-frames SYN generator (see bench-ebpf/src/gen.rs).
pub static GEN: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-gen"));
/// `probe_clock`, `probe_lookup`, `probe_update`: one primitive each, for
/// reference costs.
pub static PROBE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-probe"));
/// `ref_*`: the same-work reference of each cost path (bench-ebpf/src/refs.rs).
pub static REFS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-ref"));
/// `bench_chain`: a new source for each repeat, then a tail call into the
/// program measured (see bench-ebpf/src/chain.rs).
pub static CHAIN: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-chain"));
