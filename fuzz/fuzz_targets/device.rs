//! Fuzz target: the device stack (`knx::device::Device`) fed a stream of cEMI frames and
//! time steps cut from arbitrary bytes: L_Data frames, and M_PropWrite.req as a KNXnet/IP
//! device-management connection hands them on. Must never panic; every frame it sends must
//! emit.
#![no_main]

use std::time::{Duration, Instant};

use knx_echarge::knx::device::{Device, DeviceState, Identity};
use knx_echarge::knx::wire::cemi::{Cemi, MessageCode, PropFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let identity = Identity {
        serial_number: [0, 0xFA, 1, 2, 3, 4],
        manufacturer_id: 0xFA,
        order_info: [0; 10],
        hardware_type: [0; 6],
        firmware_version: [1, 1],
    };
    let mut device = Device::new(identity, DeviceState::default());
    device.set_programming_mode(data.first().is_some_and(|b| b & 1 == 1));
    let mut now = Instant::now();
    // Records: one byte of delay (×50 ms), one byte of length, then that many cEMI bytes.
    let mut rest = data.get(1..).unwrap_or_default();
    while let [delay, len, tail @ ..] = rest {
        let (frame, next) = tail.split_at(usize::from(*len).min(tail.len()));
        rest = next;
        now += Duration::from_millis(u64::from(*delay) * 50);
        if device.poll_timeout().is_some_and(|t| t <= now) {
            device.handle_timeout(now);
        }
        if let Ok(Cemi::LData(mut frame)) = Cemi::parse(frame) {
            // Point most frames at the device so the fuzzer reaches the management code.
            if *delay & 0x80 == 0 {
                frame.destination =
                    knx_echarge::knx::wire::cemi::Destination::Individual(device.address());
            }
            device.handle_frame(now, &frame);
        } else if let Ok(Cemi::Other {
            code: MessageCode::MPropWriteReq,
            body,
        }) = Cemi::parse(frame)
            && let Ok(request) = PropFrame::parse(&body)
        {
            let _ = device.local_property_write(&request);
        }
        while let Some(out) = device.poll_transmit() {
            assert!(Cemi::LData(out).to_bytes().is_ok());
        }
        while device.poll_event().is_some() {}
    }
});
