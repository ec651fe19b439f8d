//! The loaded filter: the eBPF object, its pins in bpffs, loading and
//! attaching, the typed maps, their layout and batched reads,
//! configuration slots, the event ring, the program's log, the SPA ring
//! and doors, sweeping, reading its status and what a reload would change.

pub mod batch;
pub mod changes;
pub mod decisions;
pub mod events;
pub mod filter;
pub mod layout;
pub mod log;
pub mod maps;
pub mod object;
pub mod pin_dir;
pub mod slots;
pub mod spa;
pub mod status;
pub mod sweep;
