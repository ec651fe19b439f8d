//! Builds the XDP program (iplock-ebpf) with the nightly toolchain and
//! bpf-linker; `src/object.rs` embeds the result.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("iplock has no parent directory")?
        .join("iplock-ebpf");
    let root_dir = root.to_str().context("workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "iplock-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
