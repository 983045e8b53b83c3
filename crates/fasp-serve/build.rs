//! Compiles `proto/fasp/jobs/v1/jobs.proto` with protox (a protobuf compiler in Rust: no
//! protoc is needed, or downloaded) and generates the tonic client and server with
//! tonic-prost-build. The encoded descriptor set is kept for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/fasp/jobs/v1/jobs.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets no OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true);
    compiler.open_file(proto)?;
    std::fs::write(
        out.join("fasp_jobs_v1_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
