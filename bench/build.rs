//! Builds the bench's own XDP programs (bench-ebpf: empty pass, empty drop,
//! frame generator) with the nightly toolchain and bpf-linker, as
//! iplock/build.rs does for the filter; `src/objects.rs` embeds them.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench has no parent directory")?
        .join("bench-ebpf");
    let root_dir = root.to_str().context("workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "iplock-bench-ebpf",
            root_dir,
            features: &["bpf"],
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
