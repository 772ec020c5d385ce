//! The RS485 line: one task owns the serial port and carries out the Modbus RTU or ASCII
//! requests of every charging point on the line, one at a time.
//!
//! [`Line::open`] opens the port with the line settings of [`Rs485Config`] (tokio-serial);
//! [`Line::spawn`] runs the same task on any byte stream (a pty in tests, an in-memory pipe in
//! unit tests). [`Line::device`] gives a [`LineModbus`] per address, which implements
//! [`Modbus`] by queueing its requests to the task.
//!
//! Timing: before each request the task waits the inter-frame gap (3.5 character times in RTU,
//! at least 1.75 ms above 19200 Bd, as the Modbus serial-line spec fixes) and any per-device
//! spacing (Heidelberg wants ~100 ms); it drops stale input, sends, and reads the answer up to
//! its expected length (RTU: from the function code and byte count; ASCII: up to CR LF) within
//! the response timeout. No answer at all is [`ModbusError::NotReachable`]; a partial,
//! mis-addressed or corrupt answer is [`ModbusError::Malformed`]. A failed request never
//! blocks the line for the others for longer than its timeout.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, trace};

use super::frame::{self, Request, Response};
use super::{Modbus, ModbusError};
use crate::catalog::Rs485Framing;

/// Parity on RS485.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// None.
    None,
    /// Even.
    Even,
    /// Odd.
    Odd,
}

/// The RS485 line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rs485Config {
    /// Baud rate.
    pub baud: u32,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
    /// RTU or ASCII.
    pub framing: Rs485Framing,
    /// 120 Ω termination on.
    pub termination: bool,
}

/// Opening the serial port failed.
#[derive(Debug, thiserror::Error)]
#[error("RS485 port {path}: {reason}")]
pub struct LineOpenError {
    /// Device path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Timing of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTiming {
    /// Framing.
    pub framing: Rs485Framing,
    /// Silence between frames.
    pub gap: Duration,
    /// Response timeout of one request.
    pub timeout: Duration,
}

impl LineTiming {
    /// Timing from the line settings.
    pub fn new(config: &Rs485Config, timeout: Duration) -> Self {
        Self {
            framing: config.framing,
            gap: inter_frame_gap(config),
            timeout,
        }
    }
}

/// 3.5 character times (RTU) or one character time (ASCII); 1.75 ms above 19200 Bd for RTU.
pub fn inter_frame_gap(config: &Rs485Config) -> Duration {
    let bits = 1
        + u64::from(config.data_bits)
        + u64::from(config.parity != Parity::None)
        + u64::from(config.stop_bits);
    let baud = u64::from(config.baud.max(1));
    let char_us = bits * 1_000_000 / baud;
    match config.framing {
        Rs485Framing::Rtu if config.baud > 19_200 => Duration::from_micros(1750),
        Rs485Framing::Rtu => Duration::from_micros(char_us * 7 / 2),
        Rs485Framing::Ascii => Duration::from_micros(char_us),
    }
}

struct Job {
    unit: u8,
    request: Request,
    spacing: Duration,
    reply: oneshot::Sender<Result<Response, ModbusError>>,
}

/// A running line task. Dropping every [`LineModbus`] and the `Line` ends it.
#[derive(Debug, Clone)]
pub struct Line {
    tx: mpsc::Sender<Job>,
    timing: LineTiming,
}

impl Line {
    /// Opens `path` with the settings of `config` and starts the line task.
    pub fn open(
        path: &Path,
        config: &Rs485Config,
        timeout: Duration,
    ) -> Result<Self, LineOpenError> {
        let err = |reason: String| LineOpenError {
            path: path.display().to_string(),
            reason,
        };
        let data_bits = match config.data_bits {
            7 => tokio_serial::DataBits::Seven,
            8 => tokio_serial::DataBits::Eight,
            n => return Err(err(format!("{n} data bits"))),
        };
        let stop_bits = match config.stop_bits {
            1 => tokio_serial::StopBits::One,
            2 => tokio_serial::StopBits::Two,
            n => return Err(err(format!("{n} stop bits"))),
        };
        let parity = match config.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        };
        let builder = tokio_serial::new(path.to_string_lossy(), config.baud)
            .data_bits(data_bits)
            .stop_bits(stop_bits)
            .parity(parity)
            .flow_control(tokio_serial::FlowControl::None);
        let port = tokio_serial::SerialStream::open(&builder).map_err(|e| err(e.to_string()))?;
        Ok(Self::spawn(port, LineTiming::new(config, timeout)))
    }

    /// Runs the line task on `io`.
    pub fn spawn<T>(io: T, timing: LineTiming) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(run(io, timing, rx));
        Self { tx, timing }
    }

    /// A Modbus client for the device at `address`.
    pub fn device(&self, address: u8) -> LineModbus {
        LineModbus {
            unit: address,
            tx: self.tx.clone(),
            timing: self.timing,
            spacing: Duration::ZERO,
        }
    }
}

/// A device on the RS485 line.
#[derive(Debug, Clone)]
pub struct LineModbus {
    unit: u8,
    tx: mpsc::Sender<Job>,
    timing: LineTiming,
    spacing: Duration,
}

impl LineModbus {
    /// Minimum time between the end of one transaction on the line and a request to this
    /// device (Heidelberg: 100 ms).
    #[must_use]
    pub fn with_spacing(mut self, spacing: Duration) -> Self {
        self.spacing = spacing;
        self
    }

    async fn call(&mut self, request: Request) -> Result<Response, ModbusError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            unit: self.unit,
            request,
            spacing: self.spacing,
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| ModbusError::NotReachable("RS485 line task stopped".into()))?;
        // The line applies the response timeout per request; this guard only covers a line
        // that is stuck behind other devices' timeouts.
        let guard = self.timing.timeout * 16 + Duration::from_secs(1);
        match tokio::time::timeout(guard, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ModbusError::NotReachable("RS485 line task stopped".into())),
            Err(_) => Err(ModbusError::NotReachable(format!(
                "RS485 line busy for {guard:?}"
            ))),
        }
    }
}

fn registers(r: Response) -> Result<Vec<u16>, ModbusError> {
    match r {
        Response::Registers(v) => Ok(v),
        other => Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
    }
}

fn written(r: Response) -> Result<(), ModbusError> {
    match r {
        Response::Written => Ok(()),
        other => Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
    }
}

impl Modbus for LineModbus {
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        registers(self.call(Request::ReadHolding(addr, count)).await?)
    }

    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        registers(self.call(Request::ReadInput(addr, count)).await?)
    }

    async fn write_single(&mut self, addr: u16, value: u16) -> Result<(), ModbusError> {
        written(self.call(Request::WriteSingle(addr, value)).await?)
    }

    async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ModbusError> {
        written(
            self.call(Request::WriteMultiple(addr, values.to_vec()))
                .await?,
        )
    }

    async fn read_coils(&mut self, addr: u16, count: u16) -> Result<Vec<bool>, ModbusError> {
        match self.call(Request::ReadCoils(addr, count)).await? {
            Response::Coils(mut v) => {
                v.truncate(usize::from(count));
                Ok(v)
            }
            other => Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
        }
    }

    async fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ModbusError> {
        written(self.call(Request::WriteCoil(addr, value)).await?)
    }

    fn set_unit(&mut self, unit: u8) -> bool {
        self.unit = unit;
        true
    }
}

async fn run<T>(mut io: T, timing: LineTiming, mut rx: mpsc::Receiver<Job>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut last_end = Instant::now();
    while let Some(job) = rx.recv().await {
        if job.reply.is_closed() {
            continue;
        }
        tokio::time::sleep_until(last_end + timing.gap.max(job.spacing)).await;
        drain(&mut io).await;
        let result = transact(&mut io, timing, job.unit, &job.request).await;
        if let Err(e) = &result {
            debug!(unit = job.unit, request = ?job.request, "RS485: {e}");
            // Let the rest of a bad answer pass before the next request.
            tokio::time::sleep(timing.gap * 2).await;
            drain(&mut io).await;
        }
        last_end = Instant::now();
        let _ = job.reply.send(result);
    }
    debug!("RS485 line task ends");
}

/// Drops whatever input is waiting (late or stray bytes).
async fn drain<T: AsyncRead + Unpin>(io: &mut T) {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_millis(1), io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => trace!(n, "RS485: dropped stale bytes"),
            _ => break,
        }
    }
}

async fn transact<T>(
    io: &mut T,
    timing: LineTiming,
    unit: u8,
    request: &Request,
) -> Result<Response, ModbusError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let pdu = request.encode();
    let out = match timing.framing {
        Rs485Framing::Rtu => frame::rtu_encode(unit, &pdu),
        Rs485Framing::Ascii => frame::ascii_encode(unit, &pdu),
    };
    let deadline = Instant::now() + timing.timeout;
    match tokio::time::timeout_at(deadline, async {
        io.write_all(&out).await?;
        io.flush().await
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ModbusError::NotReachable(format!("RS485 write: {e}"))),
        Err(_) => return Err(ModbusError::NotReachable("RS485 write timed out".into())),
    }
    if unit == 0 {
        // Broadcast: no answer.
        return Ok(Response::Written);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    let answer = tokio::time::timeout_at(deadline, read_frame(io, timing.framing, &mut buf)).await;
    let (got_unit, pdu) = match answer {
        Err(_) if buf.is_empty() => {
            return Err(ModbusError::NotReachable(format!(
                "no answer from {unit} within {:?}",
                timing.timeout
            )));
        }
        Err(_) => {
            return Err(ModbusError::Malformed(format!(
                "truncated answer from {unit} ({} bytes)",
                buf.len()
            )));
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => match timing.framing {
            Rs485Framing::Rtu => frame::rtu_decode(&buf).map(|(u, p)| (u, p.to_vec()))?,
            Rs485Framing::Ascii => frame::ascii_decode(&buf)?,
        },
    };
    if got_unit != unit {
        return Err(ModbusError::Malformed(format!(
            "answer from address {got_unit} to a request for {unit}"
        )));
    }
    frame::decode_response(request, &pdu)
}

/// Reads one frame into `buf`, in chunks (a pty or UART delivers several bytes per read).
/// Bytes after the frame are dropped with the next request's drain.
async fn read_frame<T>(
    io: &mut T,
    framing: Rs485Framing,
    buf: &mut Vec<u8>,
) -> Result<(), ModbusError>
where
    T: AsyncRead + Unpin,
{
    let mut chunk = [0u8; 256];
    loop {
        let n = io
            .read(&mut chunk)
            .await
            .map_err(|e| ModbusError::NotReachable(format!("RS485 read: {e}")))?;
        if n == 0 {
            return Err(ModbusError::NotReachable("RS485 port closed".into()));
        }
        let got = chunk.get(..n).unwrap_or_default();
        match framing {
            Rs485Framing::Rtu => {
                buf.extend_from_slice(got);
                if let Some(len) = frame::rtu_response_len(buf)? {
                    if buf.len() >= len {
                        buf.truncate(len);
                        return Ok(());
                    }
                }
            }
            Rs485Framing::Ascii => {
                let got = if buf.is_empty() {
                    match got.iter().position(|b| *b == b':') {
                        Some(i) => got.get(i..).unwrap_or_default(),
                        None => continue,
                    }
                } else {
                    got
                };
                buf.extend_from_slice(got);
                if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.truncate(end + 2);
                    return Ok(());
                }
                if buf.len() > 513 {
                    return Err(ModbusError::Malformed("ASCII frame too long".into()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn timing(framing: Rs485Framing) -> LineTiming {
        LineTiming {
            framing,
            gap: Duration::from_millis(2),
            timeout: Duration::from_millis(200),
        }
    }

    /// A scripted device: answers each request with `answer(request frame)`.
    fn device(
        mut io: DuplexStream,
        framing: Rs485Framing,
        answer: impl Fn(u8, &Request) -> Option<Vec<u8>> + Send + 'static,
    ) {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut b = [0u8; 1];
            while let Ok(1) = io.read(&mut b).await {
                buf.push(b[0]);
                let parsed = match framing {
                    Rs485Framing::Rtu => match frame::rtu_request_len(&buf) {
                        Ok(Some(n)) if buf.len() >= n => {
                            frame::rtu_decode(&buf).ok().map(|(u, p)| (u, p.to_vec()))
                        }
                        _ => continue,
                    },
                    Rs485Framing::Ascii => {
                        if !buf.ends_with(b"\r\n") {
                            continue;
                        }
                        frame::ascii_decode(&buf).ok()
                    }
                };
                buf.clear();
                let Some((unit, pdu)) = parsed else { continue };
                let Ok(req) = Request::parse(&pdu) else {
                    continue;
                };
                if let Some(out) = answer(unit, &req) {
                    let _ = io.write_all(&out).await;
                }
            }
        });
    }

    fn regs(req: &Request) -> Response {
        match req {
            Request::ReadHolding(a, n) | Request::ReadInput(a, n) => {
                Response::Registers((*a..a + n).collect())
            }
            _ => Response::Written,
        }
    }

    #[tokio::test]
    async fn rtu_and_ascii_round_trip() {
        for framing in [Rs485Framing::Rtu, Rs485Framing::Ascii] {
            let (a, b) = tokio::io::duplex(1024);
            device(b, framing, move |unit, req| {
                let pdu = regs(req).encode(req);
                Some(match framing {
                    Rs485Framing::Rtu => frame::rtu_encode(unit, &pdu),
                    Rs485Framing::Ascii => frame::ascii_encode(unit, &pdu),
                })
            });
            let line = Line::spawn(a, timing(framing));
            let mut d = line.device(7);
            assert_eq!(d.read_holding(10, 3).await, Ok(vec![10, 11, 12]));
            assert_eq!(d.read_input(4, 2).await, Ok(vec![4, 5]));
            assert_eq!(d.write_single(261, 160).await, Ok(()));
            assert_eq!(d.write_multiple(0x4100, &[0, 6000]).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn faults_are_classified() {
        let (a, b) = tokio::io::duplex(1024);
        device(b, Rs485Framing::Rtu, |unit, req| {
            let pdu = regs(req).encode(req);
            match unit {
                1 => Some(frame::rtu_encode(unit, &pdu)),
                2 => None, // silent
                3 => Some(frame::exception_pdu(3, 2)).map(|p| frame::rtu_encode(unit, &p)),
                4 => {
                    let mut f = frame::rtu_encode(unit, &pdu);
                    if let Some(b) = f.get_mut(4) {
                        *b ^= 0xFF; // CRC no longer matches
                    }
                    Some(f)
                }
                5 => {
                    let f = frame::rtu_encode(unit, &pdu);
                    Some(f.get(..f.len() - 3).unwrap_or_default().to_vec())
                }
                6 => Some(vec![0x42, 0x99, 0x13, 0x37]),
                _ => Some(frame::rtu_encode(9, &pdu)), // wrong address
            }
        });
        let line = Line::spawn(a, timing(Rs485Framing::Rtu));
        let ok = line.device(1);
        let mut results = Vec::new();
        for unit in 2..=7 {
            let mut d = line.device(unit);
            results.push(d.read_holding(0, 2).await);
            // The line keeps working for the good device after each fault.
            assert_eq!(ok.clone().read_holding(0, 2).await, Ok(vec![0, 1]));
        }
        assert!(
            matches!(results[0], Err(ModbusError::NotReachable(_))),
            "{results:?}"
        );
        assert_eq!(results[1], Err(ModbusError::Exception(2)));
        for r in &results[2..] {
            assert!(matches!(r, Err(ModbusError::Malformed(_))), "{r:?}");
        }
    }

    #[test]
    fn gaps() {
        let mut c = Rs485Config {
            baud: 9600,
            data_bits: 8,
            parity: Parity::Even,
            stop_bits: 1,
            framing: Rs485Framing::Rtu,
            termination: false,
        };
        // 11 bits at 9600 Bd: 1.146 ms per character, 3.5 characters = 4.01 ms.
        assert_eq!(inter_frame_gap(&c), Duration::from_micros(4007));
        c.baud = 57_600;
        assert_eq!(inter_frame_gap(&c), Duration::from_micros(1750));
    }
}
