//! Fuzz target: the receive path of the TP-UART link machine (`knx::link::tpuart`), not just
//! the frame codec. The input is cut into chunks, each preceded by a byte giving the time
//! that passed (0–255 ms) and a byte giving the chunk length; the machine must never panic,
//! must always have a timer while running and must emit only non-empty writes.
#![no_main]

use std::time::{Duration, Instant};

use knx_echarge::knx::IndividualAddress;
use knx_echarge::knx::link::tpuart::{TpUartLink, TpUartOptions};
use knx_echarge::knx::link::{ByteStream, Link};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut link = TpUartLink::new(t0, IndividualAddress::from_raw(0x110A), TpUartOptions::default());
    let mut t = t0;
    let mut rest = data;
    while let [gap, len, tail @ ..] = rest {
        t += Duration::from_millis(u64::from(*gap));
        let n = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        if link.poll_timeout().is_some_and(|d| d <= t) {
            link.handle_timeout(t);
        }
        link.handle_bytes(t, chunk);
        assert!(link.poll_timeout().is_some());
        while let Some(out) = link.poll_write() {
            assert!(!out.is_empty());
        }
        while link.poll_event().is_some() {}
        rest = tail;
    }
});
