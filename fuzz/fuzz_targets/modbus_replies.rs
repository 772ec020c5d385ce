//! Fuzz target: arbitrary Modbus replies through every charging-point driver's decoder. A
//! transport answers each read from the fuzz input (registers with the requested count or
//! a wrong one, an exception, or no answer); each of the nine drivers identifies, polls and
//! sends its heartbeat on it. Nothing may panic: a wrong answer is an error, never a crash.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use knx_echarge::chargers::drivers::{
    DriverSettings, abb, alfen, bender, heidelberg, keba, mennekes, phoenix, vestel, webasto,
};
use knx_echarge::chargers::status::ChargePoint;
use knx_echarge::modbus::{Modbus, ModbusError};
use libfuzzer_sys::fuzz_target;

/// Answers from the fuzz input, byte by byte.
struct Replies<'a> {
    data: &'a [u8],
}

impl Replies<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(f, r)| (*f, r));
        self.data = rest;
        first
    }

    fn words(&mut self, count: u16) -> Result<Vec<u16>, ModbusError> {
        match self.byte() % 8 {
            0 => Err(ModbusError::Exception(self.byte())),
            1 => Err(ModbusError::NotReachable("fuzz".into())),
            // A wrong count (the transport checks lengths, but a driver must not rely on
            // more than it got).
            2 => {
                let n = self.byte() % 8;
                Ok((0..n)
                    .map(|_| u16::from_be_bytes([self.byte(), self.byte()]))
                    .collect())
            }
            _ => Ok((0..count)
                .map(|_| u16::from_be_bytes([self.byte(), self.byte()]))
                .collect()),
        }
    }
}

impl Modbus for Replies<'_> {
    async fn read_holding(&mut self, _addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.words(count)
    }
    async fn read_input(&mut self, _addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        self.words(count)
    }
    async fn write_single(&mut self, _addr: u16, _value: u16) -> Result<(), ModbusError> {
        self.words(0).map(|_| ())
    }
    async fn write_multiple(&mut self, _addr: u16, _values: &[u16]) -> Result<(), ModbusError> {
        self.words(0).map(|_| ())
    }
    async fn read_coils(&mut self, _addr: u16, count: u16) -> Result<Vec<bool>, ModbusError> {
        self.words(count.div_ceil(16)).map(|w| {
            w.iter()
                .flat_map(|r| (0..16).map(move |b| r & (1 << b) != 0))
                .take(usize::from(count))
                .collect()
        })
    }
    async fn write_coil(&mut self, _addr: u16, _value: bool) -> Result<(), ModbusError> {
        self.words(0).map(|_| ())
    }
    fn set_unit(&mut self, _unit: u8) -> bool {
        true
    }
}

/// Runs a future that never waits on anything outside (the transport answers at once).
fn run<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

fn exercise<D: ChargePoint>(mut driver: D) {
    let _ = run(driver.identify());
    for _ in 0..3 {
        let _ = run(driver.poll());
    }
    let _ = run(driver.heartbeat());
}

fuzz_target!(|data: &[u8]| {
    let s = DriverSettings::default();
    let t = || Replies { data };
    exercise(keba::KebaP30::new(t(), s.clone()));
    exercise(abb::AbbTerraAc::new(t(), s.clone()));
    exercise(bender::BenderCc::new(t(), s.clone()));
    exercise(alfen::AlfenEve::new(t(), 1, s.clone()));
    exercise(heidelberg::HeidelbergEc::new(t(), s.clone()));
    exercise(webasto::WebastoNext::new(t(), s.clone()));
    exercise(vestel::VestelEvc04::new(t(), s.clone()));
    exercise(mennekes::AmtronCompact::new(t(), s.clone()));
    exercise(phoenix::PhoenixEvCc::new(t(), s));
});
