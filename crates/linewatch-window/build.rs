//! Compiles `proto/sparkplug_b.proto` into Rust types with prost, using protox (a protobuf
//! compiler written in Rust) so that building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sparkplug_b.proto");
    let descriptors = protox::compile(["proto/sparkplug_b.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
