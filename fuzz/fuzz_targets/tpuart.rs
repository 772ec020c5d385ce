//! Fuzz target: the TP1 frame parser used behind the TP-UART, and the byte classifier.
//! Must never panic; whatever parses must re-emit to exactly the input.
#![no_main]

use knx_echarge::knx::wire::tpuart::{ChipByte, TpFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TpFrame::expected_len(data);
    if let Some(&first) = data.first() {
        let _ = ChipByte::classify(first);
    }
    if let Ok(frame) = TpFrame::parse(data) {
        let _ = frame.to_string();
        assert_eq!(frame.to_bytes().ok().as_deref(), Some(data));
    }
});
