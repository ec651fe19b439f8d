// Rebuild the XDP program when bpf-linker changes (a new LLVM changes the
// output). Packet data has no alignment, and without this feature LLVM
// reads every multi-byte field a byte at a time; the verifier allows
// unaligned packet and map-value access where the CPU does (x86-64,
// arm64), and the feature leaves the stack, where it does not, aligned.
fn main() {
    println!("cargo::rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let linker = dir.join("bpf-linker");
            if linker.exists() {
                println!("cargo:rerun-if-changed={}", linker.display());
                break;
            }
        }
    }
}
