//! Rebuild when the data that the firmware embeds changes.

fn main() {
    for dir in ["group-objects", "etsdb", "hw"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
