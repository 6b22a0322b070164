//! Build metadata for `/server_info` and the xDS node's `user_agent_build_version`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
