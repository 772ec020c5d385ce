//! Fuzz target: `dpt::decode` of every supported DPT on arbitrary payloads. Must never panic;
//! whatever decodes must re-encode to a payload that decodes to the same value.
#![no_main]

use knx_echarge::knx::dpt::{Dpt, Payload, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payloads = [
        Payload::Short(data.first().map_or(0, |b| b & 0x3F)),
        Payload::Long(data.to_vec()),
    ];
    for dpt in Dpt::ALL {
        for payload in &payloads {
            if let Ok(value) = decode(dpt, payload) {
                let again = encode(dpt, &value).expect("decoded values re-encode");
                assert_eq!(decode(dpt, &again).ok(), Some(value));
            }
        }
    }
});
