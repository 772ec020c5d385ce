//! Fuzz target: the firmware file check (`web::firmware::verify`: header, manifest, version,
//! size and SHA-256) on arbitrary bytes. Must never panic; whatever is accepted has a strict
//! version and exactly the manifest's size.
#![no_main]

use knx_echarge::web::firmware::{parse_version, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((manifest, image)) = verify(data, "0.1.0") {
        assert!(parse_version(&manifest.version).is_some());
        assert_eq!(image.len() as u64, manifest.size);
    }
});
