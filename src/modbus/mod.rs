//! The Modbus client interface the drivers and meters use, and its Modbus TCP implementation.
//!
//! [`Modbus`] is the one interface every transport offers: Modbus TCP here (tokio-modbus),
//! Modbus RTU and ASCII over the shared RS485 line elsewhere. Every call has a timeout, since
//! tokio-modbus calls have none of their own. Errors are sorted the way the spec's
//! charging-point faults need them: the device cannot be reached ([`ModbusError::NotReachable`],
//! timeouts included) versus it answers wrongly ([`ModbusError::Exception`],
//! [`ModbusError::Malformed`]).

pub mod frame;
pub mod line;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use tokio_modbus::client::{Client, Context, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_modbus::{Request, Response};

/// A Modbus call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModbusError {
    /// No connection, connection lost, or no answer in time.
    #[error("not reachable: {0}")]
    NotReachable(String),
    /// The device answered with a Modbus exception (code).
    #[error("Modbus exception 0x{0:02X}")]
    Exception(u8),
    /// The answer was malformed (wrong length, wrong function, bad CRC/LRC, …).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// A Modbus client bound to one device (unit id / RS485 address).
///
/// Implementations apply their timeout to every call; a timed-out connection is dropped and
/// re-established on the next call.
#[allow(
    async_fn_in_trait,
    reason = "drivers are generic over the transport; no dyn needed"
)]
pub trait Modbus: Send {
    /// FC 0x03.
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError>;
    /// FC 0x04.
    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError>;
    /// FC 0x06.
    async fn write_single(&mut self, addr: u16, value: u16) -> Result<(), ModbusError>;
    /// FC 0x10.
    async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ModbusError>;
    /// FC 0x01.
    async fn read_coils(&mut self, addr: u16, count: u16) -> Result<Vec<bool>, ModbusError>;
    /// FC 0x05.
    async fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ModbusError>;
    /// Addresses another unit id over the same connection (Alfen: station 200, sockets 1 and
    /// 2). Returns `false` when the transport cannot.
    fn set_unit(&mut self, unit: u8) -> bool {
        let _ = unit;
        false
    }
}

/// Modbus TCP to one unit, reconnecting on demand.
pub struct TcpModbus {
    addr: SocketAddr,
    unit: u8,
    timeout: Duration,
    ctx: Option<Context>,
    closed: Arc<AtomicBool>,
}

/// A TCP stream that notes when the device closes the connection: tokio-modbus reports the
/// end of the stream as "the last OS error", whose text is whatever errno held ("Operation
/// now in progress").
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    closed: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            self.closed.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl std::fmt::Debug for TcpModbus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpModbus")
            .field("addr", &self.addr)
            .field("unit", &self.unit)
            .field("timeout", &self.timeout)
            .field("connected", &self.ctx.is_some())
            .field("closed", &self.closed)
            .finish()
    }
}

impl TcpModbus {
    /// A client for unit `unit` at `addr`; connects on the first call.
    pub fn new(addr: SocketAddr, unit: u8, timeout: Duration) -> Self {
        Self {
            addr,
            unit,
            timeout,
            ctx: None,
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The device address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn context(&mut self) -> Result<&mut Context, ModbusError> {
        if self.ctx.is_none() {
            let stream = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
                .await
                .map_err(|_| {
                    ModbusError::NotReachable(format!("{}: connect timed out", self.addr))
                })?
                .map_err(|e| ModbusError::NotReachable(format!("{}: {e}", self.addr)))?;
            self.closed = Arc::new(AtomicBool::new(false));
            let watched = Watched {
                inner: stream,
                closed: Arc::clone(&self.closed),
            };
            self.ctx = Some(tokio_modbus::client::tcp::attach_slave(
                watched,
                Slave(self.unit),
            ));
        }
        match self.ctx.as_mut() {
            Some(ctx) => {
                ctx.set_slave(Slave(self.unit));
                Ok(ctx)
            }
            None => Err(ModbusError::NotReachable(format!(
                "{}: no connection",
                self.addr
            ))),
        }
    }

    /// Runs one call with the timeout; drops the connection on transport errors and timeouts.
    async fn call<T, F>(&mut self, what: &str, f: F) -> Result<T, ModbusError>
    where
        F: for<'c> FnOnce(
            &'c mut Context,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = tokio_modbus::Result<T>> + Send + 'c>,
        >,
    {
        let timeout = self.timeout;
        let addr = self.addr;
        let ctx = self.context().await?;
        let result = match tokio::time::timeout(timeout, f(ctx)).await {
            Err(_) => Err(ModbusError::NotReachable(format!(
                "{addr}: {what} timed out after {timeout:?}"
            ))),
            // tokio-modbus reports undecodable answers as transport errors: InvalidData, or
            // UnexpectedEof when a complete frame's PDU is too short for its function code (a
            // truncated write echo). The device answered, wrongly (Comm), rather than not at
            // all; a closed connection comes as None from the stream, or as a socket error.
            Ok(Err(tokio_modbus::Error::Transport(e)))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Err(ModbusError::Malformed(format!("{addr}: {what}: {e}")))
            }
            Ok(Err(tokio_modbus::Error::Transport(_))) if self.closed.load(Ordering::Relaxed) => {
                Err(ModbusError::NotReachable(format!(
                    "{addr}: {what}: the device closed the connection"
                )))
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) => {
                Err(ModbusError::NotReachable(format!("{addr}: {what}: {e}")))
            }
            Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                Err(ModbusError::Malformed(format!("{addr}: {what}: {e}")))
            }
            Ok(Ok(Err(code))) => Err(ModbusError::Exception(u8::from(code))),
            Ok(Ok(Ok(v))) => Ok(v),
        };
        if matches!(
            result,
            Err(ModbusError::NotReachable(_) | ModbusError::Malformed(_))
        ) {
            // Start clean: a late answer must not be taken for the next request's.
            self.ctx = None;
        }
        result
    }
}

impl Modbus for TcpModbus {
    // Register reads go through `Client::call` and are checked here: tokio-modbus's
    // `Reader` methods `debug_assert` the answer's length, which a device must not be able to
    // trigger.
    async fn read_holding(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        let r = self
            .call("read holding registers", move |c| {
                Box::pin(Client::call(c, Request::ReadHoldingRegisters(addr, count)))
            })
            .await?;
        match r {
            Response::ReadHoldingRegisters(v) => check_len(v, count),
            other => Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
        }
    }

    async fn read_input(&mut self, addr: u16, count: u16) -> Result<Vec<u16>, ModbusError> {
        let r = self
            .call("read input registers", move |c| {
                Box::pin(Client::call(c, Request::ReadInputRegisters(addr, count)))
            })
            .await?;
        match r {
            Response::ReadInputRegisters(v) => check_len(v, count),
            other => Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
        }
    }

    async fn write_single(&mut self, addr: u16, value: u16) -> Result<(), ModbusError> {
        self.call("write single register", move |c| {
            Box::pin(c.write_single_register(addr, value))
        })
        .await
    }

    async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> Result<(), ModbusError> {
        let values = values.to_vec();
        self.call("write multiple registers", move |c| {
            Box::pin(async move { c.write_multiple_registers(addr, &values).await })
        })
        .await
    }

    async fn read_coils(&mut self, addr: u16, count: u16) -> Result<Vec<bool>, ModbusError> {
        let r = self
            .call("read coils", move |c| {
                Box::pin(Client::call(c, Request::ReadCoils(addr, count)))
            })
            .await?;
        let mut v = match r {
            Response::ReadCoils(v) => v,
            other => return Err(ModbusError::Malformed(format!("unexpected {other:?}"))),
        };
        // Coils come padded to whole bytes.
        if v.len() < usize::from(count) {
            return Err(ModbusError::Malformed(format!(
                "{} coils instead of {count}",
                v.len()
            )));
        }
        v.truncate(usize::from(count));
        Ok(v)
    }

    async fn write_coil(&mut self, addr: u16, value: bool) -> Result<(), ModbusError> {
        self.call("write single coil", move |c| {
            Box::pin(c.write_single_coil(addr, value))
        })
        .await
    }

    fn set_unit(&mut self, unit: u8) -> bool {
        self.unit = unit;
        true
    }
}

fn check_len(v: Vec<u16>, count: u16) -> Result<Vec<u16>, ModbusError> {
    if v.len() == usize::from(count) {
        Ok(v)
    } else {
        Err(ModbusError::Malformed(format!(
            "{} registers instead of {count}",
            v.len()
        )))
    }
}

/// Register decoding helpers shared by drivers and meters. All return `None` for a short
/// slice, never panic.
pub mod decode {
    /// u32 from two registers, high word first.
    pub fn u32_be(r: &[u16]) -> Option<u32> {
        match r {
            [hi, lo, ..] => Some((u32::from(*hi) << 16) | u32::from(*lo)),
            _ => None,
        }
    }

    /// u32 from two registers, low word first.
    pub fn u32_le(r: &[u16]) -> Option<u32> {
        match r {
            [lo, hi, ..] => Some((u32::from(*hi) << 16) | u32::from(*lo)),
            _ => None,
        }
    }

    /// u64 from four registers, high word first.
    pub fn u64_be(r: &[u16]) -> Option<u64> {
        match r {
            [a, b, c, d, ..] => Some(
                (u64::from(*a) << 48)
                    | (u64::from(*b) << 32)
                    | (u64::from(*c) << 16)
                    | u64::from(*d),
            ),
            _ => None,
        }
    }

    /// IEEE 754 f32 from two registers, high word first.
    pub fn f32_be(r: &[u16]) -> Option<f32> {
        u32_be(r).map(f32::from_bits)
    }

    /// IEEE 754 f64 from four registers, high word first.
    pub fn f64_be(r: &[u16]) -> Option<f64> {
        u64_be(r).map(f64::from_bits)
    }

    /// ASCII text from registers (two characters per register, high byte first), trimmed of
    /// NULs and spaces; non-ASCII bytes become `?`.
    pub fn ascii(r: &[u16]) -> String {
        let bytes: Vec<u8> = r.iter().flat_map(|w| w.to_be_bytes()).collect();
        let text: String = bytes
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    char::from(*b)
                } else if *b == 0 {
                    '\0'
                } else {
                    '?'
                }
            })
            .collect();
        text.trim_matches(|c: char| c == '\0' || c == ' ')
            .replace('\0', "")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn words() {
            assert_eq!(u32_be(&[0x0001, 0x0002]), Some(0x0001_0002));
            assert_eq!(u32_le(&[0x0001, 0x0002]), Some(0x0002_0001));
            assert_eq!(u32_be(&[1]), None);
            assert_eq!(f32_be(&[0x41C8, 0x0000]), Some(25.0));
            assert_eq!(ascii(&[0x4142, 0x4300, 0x0000]), "ABC");
        }
    }
}
