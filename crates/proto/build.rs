//! Generates Rust types for every contract under `proto/`. Uses the protoc that
//! ships inside the `protoc-bin-vendored` crate so a fresh machine needs no
//! system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env.
    unsafe { std::env::set_var("PROTOC", protoc) };

    // Read at run time, not baked in with env!: a build script binary may be
    // reused from another checkout of the repo sharing the target directory.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files: Vec<PathBuf> = ["catalog", "seating", "payments", "analytics", "events"]
        .iter()
        .map(|domain| root.join(format!("bookmyseat/{domain}/v1/{domain}.proto")))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    tonic_prost_build::configure().compile_protos(&files, &[root])?;
    Ok(())
}
