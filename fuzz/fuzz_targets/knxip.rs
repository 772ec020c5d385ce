//! Fuzz target: `KnxIpFrame::parse` and `frame_len` on arbitrary bytes. Must never panic;
//! whatever parses must re-emit to exactly the input.
#![no_main]

use knx_echarge::knx::wire::knxip::{KnxIpFrame, frame_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    if let Ok(frame) = KnxIpFrame::parse(data) {
        let _ = frame.to_string();
        assert_eq!(frame.to_bytes().ok().as_deref(), Some(data));
    }
});
