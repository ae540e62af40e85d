//! Generates the Rust code for every `.proto` under `proto/` with a vendored `protoc`, so a
//! machine with only Rust builds the workspace.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("telltale/v1/vehicle.proto"),
        root.join("telltale/crm/v1/leads.proto"),
        root.join("telltale/crm/v1/quotes.proto"),
        root.join("telltale/crm/v1/catalog.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // The descriptor set is what gRPC server reflection answers with.
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("telltale_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_with_config(config, &protos, &[root])?;
    Ok(())
}
