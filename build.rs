//! Bake libtorch's lib dir into the binary's rpath, so `gatescope` (and the test binaries)
//! find libtorch at run time without LD_LIBRARY_PATH. torch-sys reports the dir it linked
//! against as DEP_TCH_LIBTORCH_LIB (its `links` key is "tch") because this crate depends on torch-sys
//! directly.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
