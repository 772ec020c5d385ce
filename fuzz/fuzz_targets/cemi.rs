//! Fuzz target: `Cemi::parse` on arbitrary bytes. Must never panic; whatever parses must
//! re-emit to exactly the input (the parser accepts only canonical encodings).
#![no_main]

use knx_echarge::knx::wire::cemi::{Cemi, CemiPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cemi) = Cemi::parse(data) {
        let _ = cemi.to_string();
        assert_eq!(cemi.to_bytes().ok().as_deref(), Some(data));
    }
    // The unchecked view must not panic either.
    let view = CemiPacket::new_unchecked(data);
    let _ = (view.source(), view.destination(), view.tpdu(), view.additional_info());
});
