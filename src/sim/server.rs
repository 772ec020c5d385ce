//! The simulators' Modbus servers.
//!
//! * [`serve_tcp`]: tokio-modbus's TCP server; the connection is wrapped so that garbage and
//!   truncated answers can be injected after tokio-modbus has framed them.
//! * [`serve_rtu`]: tokio-modbus's RTU server on a serial port (one end of a [`crate::sim::pty::PtyPair`] in tests), any
//!   number of simulated devices on the line, routed by address.
//! * [`serve_ascii`] / [`serve_line`]: a hand-written serial server (ASCII, which tokio-modbus
//!   lacks, or RTU) with every fault hook, on a port or any byte stream.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_modbus::{ExceptionCode, SlaveRequest};
use tracing::debug;

use super::SimHandle;
use crate::catalog::Rs485Framing;
use crate::modbus::frame::{self, Request, Response};

/// A running simulator server; dropping it stops it.
#[derive(Debug)]
pub struct SimServer {
    /// TCP address (for TCP servers).
    pub addr: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl SimServer {
    /// Stops the server.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn to_frame(r: &tokio_modbus::Request<'_>) -> Result<Request, ExceptionCode> {
    use tokio_modbus::Request as R;
    Ok(match r {
        R::ReadCoils(a, n) => Request::ReadCoils(*a, *n),
        R::ReadHoldingRegisters(a, n) => Request::ReadHolding(*a, *n),
        R::ReadInputRegisters(a, n) => Request::ReadInput(*a, *n),
        R::WriteSingleCoil(a, v) => Request::WriteCoil(*a, *v),
        R::WriteSingleRegister(a, v) => Request::WriteSingle(*a, *v),
        R::WriteMultipleRegisters(a, v) => Request::WriteMultiple(*a, v.to_vec()),
        _ => return Err(ExceptionCode::IllegalFunction),
    })
}

fn to_modbus(req: &Request, resp: Response) -> tokio_modbus::Response {
    use tokio_modbus::Response as R;
    match (req, resp) {
        (Request::ReadInput(..), Response::Registers(v)) => R::ReadInputRegisters(v),
        (_, Response::Registers(v)) => R::ReadHoldingRegisters(v),
        (_, Response::Coils(v)) => R::ReadCoils(v),
        (Request::WriteCoil(a, v), _) => R::WriteSingleCoil(*a, *v),
        (Request::WriteSingle(a, v), _) => R::WriteSingleRegister(*a, *v),
        (Request::WriteMultiple(a, v), _) => {
            R::WriteMultipleRegisters(*a, u16::try_from(v.len()).unwrap_or(0))
        }
        (Request::ReadCoils(a, _) | Request::ReadHolding(a, _) | Request::ReadInput(a, _), _) => {
            R::WriteSingleRegister(*a, 0)
        }
    }
}

/// The devices on one server, by unit id; `None` = one device answering every unit.
#[derive(Clone)]
struct Service {
    devices: BTreeMap<u8, SimHandle>,
    any: Option<SimHandle>,
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Option<tokio_modbus::Response>, ExceptionCode>> + Send>>;

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    type Response = Option<tokio_modbus::Response>;
    type Exception = ExceptionCode;
    type Future = ServiceFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let sim = self
            .any
            .clone()
            .or_else(|| self.devices.get(&req.slave).cloned());
        Box::pin(async move {
            let Some(sim) = sim else { return Ok(None) };
            let request = to_frame(&req.request)?;
            let delay = sim.lock().faults.delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let answer = sim.lock().handle(req.slave, &request);
            match answer {
                None => Ok(None),
                Some(Err(code)) => Err(ExceptionCode::new(code)),
                Some(Ok(resp)) => Ok(Some(to_modbus(&request, resp))),
            }
        })
    }
}

/// Serves `sim` over Modbus TCP on `bind` (port 0 = any free port).
pub async fn serve_tcp(sim: SimHandle, bind: SocketAddr) -> io::Result<SimServer> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let service = Service {
        devices: BTreeMap::new(),
        any: Some(sim.clone()),
    };
    let task = tokio::spawn(async move {
        let on_connected = |stream: TcpStream, _peer: SocketAddr| {
            let service = service.clone();
            let sim = sim.clone();
            async move {
                if sim.lock().faults.offline {
                    return Ok(None);
                }
                Ok(Some((service, FaultyStream::new(stream, sim))))
            }
        };
        if let Err(e) = server
            .serve(&on_connected, |e| debug!("simulator connection: {e}"))
            .await
        {
            debug!("simulator server ends: {e}");
        }
    });
    Ok(SimServer {
        addr: Some(addr),
        task,
    })
}

/// Serves `devices` (address → simulator) with tokio-modbus's RTU server on the serial port
/// at `path`.
pub fn serve_rtu(path: &Path, baud: u32, devices: Vec<(u8, SimHandle)>) -> io::Result<SimServer> {
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), baud))
        .map_err(io::Error::other)?;
    let server = tokio_modbus::server::rtu::Server::new(port);
    let service = Service {
        devices: devices.into_iter().collect(),
        any: None,
    };
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve_forever(service).await {
            debug!("RTU simulator ends: {e}");
        }
    });
    Ok(SimServer { addr: None, task })
}

/// Serves `devices` over Modbus ASCII on the serial port at `path`.
pub fn serve_ascii(path: &Path, baud: u32, devices: Vec<(u8, SimHandle)>) -> io::Result<SimServer> {
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), baud))
        .map_err(io::Error::other)?;
    Ok(serve_line(port, Rs485Framing::Ascii, devices))
}

/// Serves `devices` on any byte stream with the hand-written RTU or ASCII framing.
pub fn serve_line<T>(io: T, framing: Rs485Framing, devices: Vec<(u8, SimHandle)>) -> SimServer
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let devices: BTreeMap<u8, SimHandle> = devices.into_iter().collect();
    let task = tokio::spawn(async move {
        if let Err(e) = line_loop(io, framing, &devices).await {
            debug!("serial simulator ends: {e}");
        }
    });
    SimServer { addr: None, task }
}

async fn line_loop<T>(
    mut io: T,
    framing: Rs485Framing,
    devices: &BTreeMap<u8, SimHandle>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if io.read(&mut byte).await? == 0 {
            return Ok(());
        }
        let decoded = match framing {
            Rs485Framing::Rtu => {
                buf.push(byte[0]);
                match frame::rtu_request_len(&buf) {
                    Ok(Some(n)) if buf.len() >= n => {
                        frame::rtu_decode(&buf).ok().map(|(u, p)| (u, p.to_vec()))
                    }
                    Ok(_) => continue,
                    Err(_) => None,
                }
            }
            Rs485Framing::Ascii => {
                if buf.is_empty() && byte[0] != b':' {
                    continue;
                }
                buf.push(byte[0]);
                if !buf.ends_with(b"\r\n") {
                    if buf.len() > 600 {
                        buf.clear();
                    }
                    continue;
                }
                frame::ascii_decode(&buf).ok()
            }
        };
        buf.clear();
        let Some((unit, pdu)) = decoded else { continue };
        let Some(sim) = devices.get(&unit) else {
            continue;
        };
        let fc = pdu.first().copied().unwrap_or(0);
        let (answer, faults) = match Request::parse(&pdu) {
            Ok(req) => {
                let delay = sim.lock().faults.delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut s = sim.lock();
                let faults = s.faults.clone();
                let answer = s.handle(unit, &req).map(|r| match r {
                    Ok(resp) => resp.encode(&req),
                    Err(code) => frame::exception_pdu(fc, code),
                });
                (answer, faults)
            }
            Err(code) => (
                Some(frame::exception_pdu(fc, code)),
                sim.lock().faults.clone(),
            ),
        };
        let Some(pdu) = answer else { continue };
        let mut out = match framing {
            Rs485Framing::Rtu => frame::rtu_encode(unit, &pdu),
            Rs485Framing::Ascii => frame::ascii_encode(unit, &pdu),
        };
        if faults.garbage {
            out = vec![unit, 0x5A, 0xA5, 0xFF, 0x00, 0x13, 0x37];
            if framing == Rs485Framing::Ascii {
                out = b":01ZZ\r\n".to_vec();
            }
        } else if faults.truncate {
            out.truncate(out.len().saturating_sub(3));
        }
        io.write_all(&out).await?;
        io.flush().await?;
    }
}

/// A TCP stream that corrupts outgoing Modbus TCP frames as the simulator's faults say.
struct FaultyStream {
    inner: TcpStream,
    sim: SimHandle,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl FaultyStream {
    fn new(inner: TcpStream, sim: SimHandle) -> Self {
        Self {
            inner,
            sim,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Moves complete frames from `pending` to `out`, corrupted if asked.
    fn frames(&mut self) {
        loop {
            let len = match self.pending.get(4..6) {
                Some([h, l]) => 6 + usize::from(u16::from_be_bytes([*h, *l])),
                _ => return,
            };
            if self.pending.len() < len {
                return;
            }
            let mut f: Vec<u8> = self.pending.drain(..len).collect();
            let faults = self.sim.lock().faults.clone();
            if faults.garbage {
                f.truncate(7);
                f.extend([0x5A, 0xA5, 0xFF, 0x00]);
            } else if faults.truncate {
                match f.get(7..9) {
                    Some([0x03 | 0x04, n]) if *n >= 2 && f.len() >= 11 => {
                        let n = *n - 2;
                        f.truncate(f.len() - 2);
                        if let Some(b) = f.get_mut(8) {
                            *b = n;
                        }
                    }
                    _ => {
                        f.truncate(f.len().saturating_sub(1));
                    }
                }
            }
            let body = u16::try_from(f.len().saturating_sub(6)).unwrap_or(0);
            if let Some(slot) = f.get_mut(4..6) {
                slot.copy_from_slice(&body.to_be_bytes());
            }
            self.out.extend(f);
        }
    }

    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // The box closes the connection after a request it does not survive (Bender 4You and
        // legacy firmware on 730–746): the server sees the end of the stream and drops it.
        if std::mem::take(&mut self.sim.lock().close_connection) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.pending.extend_from_slice(buf);
        this.frames();
        match this.poll_out(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_out(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_out(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}
