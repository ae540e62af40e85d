//! Generates the Rust code for every `.proto` under `proto/` with a vendored `protoc`, so a
//! machine with only Rust builds the workspace: the messages with prost, and with the `grpc`
//! feature the CRM's gRPC clients and servers with tonic as well.

use std::path::{Path, PathBuf};

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
    // The descriptor set is what gRPC server reflection answers with.
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join("telltale_descriptor.bin");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    compile(config, &protos, &root, &descriptors)
}

#[cfg(feature = "grpc")]
fn compile(
    config: prost_build::Config,
    protos: &[PathBuf],
    root: &Path,
    descriptors: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .compile_with_config(config, protos, &[root.to_path_buf()])?;
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn compile(
    mut config: prost_build::Config,
    protos: &[PathBuf],
    root: &Path,
    descriptors: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    config
        .file_descriptor_set_path(descriptors)
        .compile_protos(protos, &[root])?;
    Ok(())
}
