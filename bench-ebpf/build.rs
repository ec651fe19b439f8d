// Compiled as iplock-ebpf/build.rs compiles the filter, so that the
// reference programs' code is as good as the filter's can be.
fn main() {
    println!("cargo::rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
}
