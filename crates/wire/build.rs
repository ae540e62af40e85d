//! Generates the Rust code for every `.proto` under `proto/` with a vendored `protoc`, so a
//! machine with only Rust builds the workspace.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("telltale/v1/vehicle.proto"),
        root.join("telltale/crm/v1/leads.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &[root])?;
    Ok(())
}
