//! Fuzz target: `Tpdu::parse` and `Apdu::parse` on arbitrary bytes. Must never panic;
//! whatever parses must re-emit to the input (APDU: with the TPCI bits cleared).
#![no_main]

use knx_echarge::knx::wire::apdu::{Apdu, Tpdu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tpdu) = Tpdu::parse(data) {
        let _ = tpdu.to_string();
        assert_eq!(tpdu.to_bytes().ok().as_deref(), Some(data));
    }
    if let Ok(apdu) = Apdu::parse(data) {
        let mut expected = data.to_vec();
        if let Some(first) = expected.first_mut() {
            *first &= 0x03;
        }
        assert_eq!(apdu.to_bytes().ok(), Some(expected));
    }
});
