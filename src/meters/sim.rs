//! Modbus TCP and RTU simulators of the pre-configured retrofit meters, for tests and the demo.
//!
//! A [`MeterSim`] is a tokio-modbus server on its own register store: Modbus TCP on loopback
//! ([`MeterSim::start`]) or Modbus RTU on a serial port, e.g. one end of a pty pair
//! standing in for the RS485 line ([`MeterSim::start_rtu`]). On TCP a request for another unit
//! id gets exception 0x0B (gateway target failed to respond); on a serial line the meter
//! ignores frames for other addresses, as a real RS485 device does. For a
//! [`SimModel`] it zero-fills the register ranges the manufacturer documents (reads outside
//! them get exception 0x02, as a real meter answers) and [`MeterSim::set_values`] writes
//! currents, powers and energies in that model's encoding. The encoders here are written
//! from the register facts in `docs/register-maps.md` §11, separately
//! from the decoders in [`super::models`]. Without a model, tests lay out registers
//! themselves ([`MeterSim::set_registers`]), e.g. for a manual configuration.
//!
//! Fault injection: [`MeterSim::set_exception`] answers every request with an exception,
//! [`MeterSim::set_silent`] stops answering (the client times out), [`MeterSim::stop`] closes
//! the listener and every connection (on a serial line: stops serving it).

use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::map::Table;

/// A simulated meter model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimModel {
    /// Carlo Gavazzi EM24-DIN (kWh(+) total at 62).
    Em24Din,
    /// Carlo Gavazzi EM24_E1, Ethernet (kWh(+) total at 52).
    Em24Ethernet,
    /// Siemens SENTRON PAC2200.
    Pac2200,
    /// ABB M4M 20/30.
    M4m,
    /// Eastron SDM630.
    Sdm630,
}

/// What the simulated meter measures. The sums (power, energy) are the sums of the phases.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimValues {
    /// Currents L1..L3 in A.
    pub currents: [f64; 3],
    /// Active powers L1..L3 in W.
    pub powers: [f64; 3],
    /// Import energies L1..L3 in Wh.
    pub energies: [f64; 3],
}

#[derive(Debug, Default)]
struct State {
    holding: BTreeMap<u16, u16>,
    input: BTreeMap<u16, u16>,
    exception: Option<u8>,
    silent: bool,
    unit: u8,
    requests: u64,
}

impl State {
    fn table(&mut self, table: Table) -> &mut BTreeMap<u16, u16> {
        match table {
            Table::Holding => &mut self.holding,
            Table::Input => &mut self.input,
        }
    }

    fn write(&mut self, table: Table, addr: u16, words: &[u16]) {
        let t = self.table(table);
        for (a, w) in (addr..=u16::MAX).zip(words) {
            t.insert(a, *w);
        }
    }

    fn read(&self, table: Table, addr: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        if count == 0 || count > 125 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let t = match table {
            Table::Holding => &self.holding,
            Table::Input => &self.input,
        };
        (0..count)
            .map(|i| {
                addr.checked_add(i)
                    .and_then(|a| t.get(&a).copied())
                    .ok_or(ExceptionCode::IllegalDataAddress)
            })
            .collect()
    }
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    /// On a serial line: frames for other addresses are not answered.
    serial: bool,
}

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.requests += 1;
        if s.silent {
            return ready(Ok(None));
        }
        if let Some(code) = s.exception {
            return ready(Err(ExceptionCode::new(code)));
        }
        if req.slave != s.unit {
            return ready(if self.serial {
                Ok(None)
            } else {
                Err(ExceptionCode::GatewayTargetDevice)
            });
        }
        ready(match req.request {
            Request::ReadHoldingRegisters(a, n) => s
                .read(Table::Holding, a, n)
                .map(|v| Some(Response::ReadHoldingRegisters(v))),
            Request::ReadInputRegisters(a, n) => s
                .read(Table::Input, a, n)
                .map(|v| Some(Response::ReadInputRegisters(v))),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// A simulated meter serving Modbus TCP on loopback or Modbus RTU on a serial port. Dropping
/// it stops the server.
#[derive(Debug)]
pub struct MeterSim {
    state: Arc<Mutex<State>>,
    model: Option<SimModel>,
    addr: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl Drop for MeterSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MeterSim {
    /// Starts a simulator for `model` (or an empty register store) answering unit `unit`, on a
    /// free loopback port.
    pub async fn start(model: Option<SimModel>, unit: u8) -> io::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), model, unit).await
    }

    /// Starts a simulator on `addr` (port 0 = any).
    pub async fn start_at(addr: SocketAddr, model: Option<SimModel>, unit: u8) -> io::Result<Self> {
        let state = initial_state(model, unit);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let service = Service {
            state: Arc::clone(&state),
            serial: false,
        };
        let task = tokio::spawn(async move {
            let server = Server::new(listener);
            let on_connected = |stream, socket_addr| {
                let service = service.clone();
                async move { accept_tcp_connection(stream, socket_addr, |_| Ok(Some(service.clone()))) }
            };
            let on_error = |e: io::Error| tracing::debug!(error = %e, "meter simulator connection");
            if let Err(e) = server.serve(&on_connected, on_error).await {
                tracing::warn!(error = %e, "meter simulator stopped");
            }
        });
        tracing::debug!(%addr, ?model, "meter simulator listening");
        Ok(Self {
            state,
            model,
            addr: Some(addr),
            task,
        })
    }

    /// Starts a simulator for `model` (or an empty register store) at RS485 address `unit`,
    /// serving Modbus RTU on the serial port at `path` (8 data bits, no parity, 1 stop bit;
    /// a pty ignores the line settings). Must run inside a tokio runtime.
    pub fn start_rtu(
        path: &Path,
        baud: u32,
        model: Option<SimModel>,
        unit: u8,
    ) -> io::Result<Self> {
        let state = initial_state(model, unit);
        let port =
            tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), baud))
                .map_err(io::Error::other)?;
        let service = Service {
            state: Arc::clone(&state),
            serial: true,
        };
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::rtu::Server::new(port);
            if let Err(e) = server.serve_forever(service).await {
                tracing::debug!(error = %e, "RTU meter simulator stopped");
            }
        });
        tracing::debug!(path = %path.display(), ?model, unit, "RTU meter simulator serving");
        Ok(Self {
            state,
            model,
            addr: None,
            task,
        })
    }

    /// The TCP address it listens on; `None` for a simulator on a serial line.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes raw registers.
    pub fn set_registers(&self, table: Table, addr: u16, words: &[u16]) {
        self.with(|s| s.write(table, addr, words));
    }

    /// Answers every request with exception `code` (`None`: answer normally).
    pub fn set_exception(&self, code: Option<u8>) {
        self.with(|s| s.exception = code);
    }

    /// Stops answering (requests are read and dropped) or answers again.
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.with(|s| s.requests)
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Sets the measurements in the model's encoding (no-op without a model).
    pub fn set_values(&self, v: &SimValues) {
        let Some(model) = self.model else {
            return;
        };
        let p_sum: f64 = v.powers.iter().sum();
        let e_sum: f64 = v.energies.iter().sum();
        self.with(|s| match model {
            SimModel::Em24Din | SimModel::Em24Ethernet => {
                // INT32, low word first; FC 0x03 and 0x04 read the same registers.
                for table in [Table::Input, Table::Holding] {
                    for (i, a) in v.currents.iter().enumerate() {
                        s.write(table, 12 + 2 * idx(i), &i32_lsw(a * 1000.0));
                    }
                    for (i, p) in v.powers.iter().enumerate() {
                        s.write(table, 18 + 2 * idx(i), &i32_lsw(p * 10.0));
                    }
                    s.write(table, 40, &i32_lsw(p_sum * 10.0));
                    let kwh_tenths = i32_lsw(e_sum / 100.0);
                    let addr = if model == SimModel::Em24Din { 62 } else { 52 };
                    s.write(table, addr, &kwh_tenths);
                }
            }
            SimModel::Pac2200 => {
                for table in [Table::Input, Table::Holding] {
                    for (i, a) in v.currents.iter().enumerate() {
                        s.write(table, 13 + 2 * idx(i), &f32_be(*a));
                    }
                    for (i, p) in v.powers.iter().enumerate() {
                        s.write(table, 25 + 2 * idx(i), &f32_be(*p));
                    }
                    s.write(table, 65, &f32_be(p_sum));
                    s.write(table, 801, &f64_be(e_sum));
                    for (i, e) in v.energies.iter().enumerate() {
                        s.write(table, 841 + 40 * idx(i), &f64_be(*e));
                    }
                }
            }
            SimModel::M4m => {
                let t = Table::Holding;
                for (i, a) in v.currents.iter().enumerate() {
                    s.write(t, 0x5B0C + 2 * idx(i), &u32_be(a * 100.0));
                }
                for (i, p) in v.powers.iter().enumerate() {
                    s.write(t, 0x5B16 + 2 * idx(i), &i32_be(p * 100.0));
                }
                s.write(t, 0x5B14, &i32_be(p_sum * 100.0));
                s.write(t, 0x5000, &u64_be(e_sum / 10.0));
                for (i, e) in v.energies.iter().enumerate() {
                    s.write(t, 0x5460 + 4 * idx(i), &u64_be(e / 10.0));
                }
            }
            SimModel::Sdm630 => {
                let t = Table::Input;
                for (i, a) in v.currents.iter().enumerate() {
                    s.write(t, 0x0006 + 2 * idx(i), &f32_be(*a));
                }
                for (i, p) in v.powers.iter().enumerate() {
                    s.write(t, 0x000C + 2 * idx(i), &f32_be(*p));
                }
                s.write(t, 0x0034, &f32_be(p_sum));
                s.write(t, 0x0048, &f32_be(e_sum / 1000.0));
                s.write(t, 0x0156, &f32_be(e_sum / 1000.0));
                for (i, e) in v.energies.iter().enumerate() {
                    s.write(t, 0x015A + 2 * idx(i), &f32_be(e / 1000.0));
                }
            }
        });
    }
}

/// A register store answering `unit`, with `model`'s documented ranges zero-filled.
fn initial_state(model: Option<SimModel>, unit: u8) -> Arc<Mutex<State>> {
    let mut state = State {
        unit,
        ..State::default()
    };
    if let Some(m) = model {
        for (table, start, end) in documented_ranges(m) {
            for a in *start..=*end {
                state.table(*table).insert(a, 0);
            }
        }
    }
    Arc::new(Mutex::new(state))
}

/// The register ranges each model documents (inclusive), zero-filled at start.
fn documented_ranges(model: SimModel) -> &'static [(Table, u16, u16)] {
    match model {
        // EM24-DIN: 0x0000..0x005F instantaneous values and meters (kWh(−) at 92..93).
        SimModel::Em24Din => &[(Table::Input, 0, 0x5F), (Table::Holding, 0, 0x5F)],
        // EM24_E1: 0x0000..0x004F (kWh(−) at 78..79).
        SimModel::Em24Ethernet => &[(Table::Input, 0, 0x4F), (Table::Holding, 0, 0x4F)],
        // PAC2200: measured values 1..66 and energy counters 801..932.
        SimModel::Pac2200 => &[
            (Table::Input, 1, 66),
            (Table::Input, 801, 932),
            (Table::Holding, 1, 66),
            (Table::Holding, 801, 932),
        ],
        // M4M: energies 0x5000.., per-phase energies 0x5460.., instantaneous 0x5B00..0x5B2C.
        SimModel::M4m => &[
            (Table::Holding, 0x5000, 0x5017),
            (Table::Holding, 0x5460, 0x5477),
            (Table::Holding, 0x5B00, 0x5B2C),
        ],
        // SDM630: input registers 30001..30080 and 30343..30358.
        SimModel::Sdm630 => &[
            (Table::Input, 0x0000, 0x004F),
            (Table::Input, 0x0156, 0x0165),
        ],
    }
}

fn idx(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(0)
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "simulated values are small"
)]
fn i32_lsw(v: f64) -> [u16; 2] {
    let b = u32::from_ne_bytes((v.round() as i32).to_ne_bytes());
    [(b & 0xFFFF) as u16, (b >> 16) as u16]
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "simulated values are small"
)]
fn i32_be(v: f64) -> [u16; 2] {
    let b = u32::from_ne_bytes((v.round() as i32).to_ne_bytes());
    [(b >> 16) as u16, (b & 0xFFFF) as u16]
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "simulated values are small and non-negative"
)]
fn u32_be(v: f64) -> [u16; 2] {
    let b = v.round() as u32;
    [(b >> 16) as u16, (b & 0xFFFF) as u16]
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "simulated values are small and non-negative"
)]
fn u64_be(v: f64) -> [u16; 4] {
    let b = v.round() as u64;
    [
        (b >> 48) as u16,
        (b >> 32) as u16,
        (b >> 16) as u16,
        b as u16,
    ]
}

#[allow(clippy::cast_possible_truncation, reason = "f32 registers")]
fn f32_be(v: f64) -> [u16; 2] {
    let b = (v as f32).to_bits();
    [(b >> 16) as u16, (b & 0xFFFF) as u16]
}

#[allow(clippy::cast_possible_truncation, reason = "word split")]
fn f64_be(v: f64) -> [u16; 4] {
    let b = v.to_bits();
    [
        (b >> 48) as u16,
        (b >> 32) as u16,
        (b >> 16) as u16,
        b as u16,
    ]
}
