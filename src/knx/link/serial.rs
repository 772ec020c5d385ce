//! The async shell of a serial link: one tokio task that runs one sans-IO [`ByteStream`]
//! machine (the TP-UART link) on a serial port.
//!
//! This file owns the serial I/O: opening the port (19200 8E1 for the TP-UART, tokio-serial),
//! reading bytes and handing them to the machine with the time they came, writing what the
//! machine asks for (each piece in one write, with a timeout), the one timer, the channels to
//! the gateway and reopening the port after an error (a USB adapter unplugged, the emulated
//! line gone). It makes no protocol decision: the machine notices a silent chip itself.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::driver::{Channels, SEND_TIMEOUT, hand_over};
use super::{ByteStream, LinkError, LinkEvent};

/// The TP-UART's line speed.
pub const TPUART_BAUD: u32 = 19_200;
/// Pause before reopening a port after an error.
pub const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// Events kept for a gateway that does not read its channel.
const MAX_PENDING_EVENTS: usize = 4096;

/// Opens `path` as the TP-UART's serial line: 19200 baud, 8 data bits, even parity, 1 stop
/// bit, no flow control.
pub fn open_tpuart(path: &Path) -> Result<tokio_serial::SerialStream, LinkError> {
    let builder = tokio_serial::new(path.to_string_lossy(), TPUART_BAUD)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::Even)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None);
    tokio_serial::SerialStream::open(&builder).map_err(|e| LinkError::Serial {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// What the task does when the stream fails.
pub(crate) enum Reopen {
    /// Reopen this TP-UART port.
    Tpuart(PathBuf),
    /// Nothing to reopen (tests): the task waits for the machine to give up.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "streams other than a port: tests")
    )]
    Never,
}

/// Runs `machine` on `stream` until it is closed, the handle asks for shutdown, or the gateway
/// dropped both channels.
pub(crate) async fn run<M, S>(mut machine: M, stream: S, reopen: Reopen, channels: Channels)
where
    M: ByteStream + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Channels {
        mut to_bus,
        from_bus,
        mut shutdown,
        mut control,
    } = channels;
    let mut control_open = true;
    let mut stream: Option<Box<dyn Io>> = Some(Box::new(stream));
    let mut buf = vec![0u8; 512];
    let mut pending: VecDeque<LinkEvent> = VecDeque::new();
    let mut to_bus_open = true;
    let mut closing = false;
    let mut shutdown_armed = true;
    let mut reopen_at: Option<tokio::time::Instant> = None;
    loop {
        while let Some(bytes) = machine.poll_write() {
            let Some(io) = stream.as_mut() else {
                tracing::trace!("serial port closed; {} bytes not written", bytes.len());
                continue;
            };
            let written = tokio::time::timeout(SEND_TIMEOUT, async {
                io.write_all(&bytes).await?;
                io.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!("serial write failed: {e}");
                    stream = None;
                    reopen_at = Some(tokio::time::Instant::now() + REOPEN_PAUSE);
                }
                Err(_) => tracing::warn!("serial write timed out"),
            }
        }
        while let Some(event) = machine.poll_event() {
            if pending.len() >= MAX_PENDING_EVENTS {
                pending.pop_front();
                tracing::warn!("gateway does not read link events; dropped the oldest");
            }
            pending.push_back(event);
        }
        if machine.is_closed() {
            break;
        }
        let deadline = machine.poll_timeout();
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let reopen_sleep = async {
            match reopen_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let read = async {
            match stream.as_mut() {
                Some(io) => io.read(&mut buf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            asked = &mut shutdown, if shutdown_armed && !closing => {
                shutdown_armed = false;
                if asked.is_ok() {
                    tracing::debug!("link shutdown requested");
                    closing = true;
                    machine.close(Instant::now());
                }
            }
            read = read => match read {
                Ok(0) | Err(_) => {
                    match read {
                        Ok(_) => tracing::warn!("serial port closed by the other end"),
                        Err(e) => tracing::warn!("serial read failed: {e}"),
                    }
                    stream = None;
                    reopen_at = Some(tokio::time::Instant::now() + REOPEN_PAUSE);
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    machine.handle_bytes(Instant::now(), data);
                }
            },
            () = reopen_sleep => {
                reopen_at = None;
                match &reopen {
                    Reopen::Tpuart(path) => match open_tpuart(path) {
                        Ok(port) => {
                            tracing::info!(path = %path.display(), "serial port reopened");
                            stream = Some(Box::new(port));
                        }
                        Err(e) => {
                            tracing::debug!("{e}");
                            reopen_at = Some(tokio::time::Instant::now() + REOPEN_PAUSE);
                        }
                    },
                    Reopen::Never => {}
                }
            }
            told = control.recv(), if control_open => match told {
                Some(told) => machine.handle_control(Instant::now(), told),
                None => control_open = false,
            },
            frame = to_bus.recv(), if to_bus_open && !closing && machine.wants_frames() => {
                match frame {
                    Some(frame) => machine.handle_frame(Instant::now(), frame),
                    None => to_bus_open = false,
                }
            }
            permit = from_bus.reserve(), if !pending.is_empty() => {
                if let (Ok(permit), Some(event)) = (permit, pending.pop_front()) {
                    permit.send(event);
                } else {
                    pending.clear();
                }
            }
            () = sleep => machine.handle_timeout(Instant::now()),
            () = from_bus.closed(), if !to_bus_open && !closing => {
                tracing::debug!("gateway dropped the link handle; closing");
                closing = true;
                machine.close(Instant::now());
            }
        }
    }
    hand_over(&from_bus, pending);
    tracing::debug!("serial link task ended");
}

/// A readable and writable byte stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::knx::link::LinkState;
    use crate::knx::link::testkit::{group_write, ia};
    use crate::knx::link::tpuart::{TpUartLink, TpUartOptions};
    use crate::knx::wire::cemi::LDataService;

    /// The driver moves bytes both ways and reports the machine's events: a chip played by
    /// the test on the other end of an in-memory pipe.
    #[tokio::test]
    async fn moves_bytes_and_events() {
        let (ours, mut chip) = tokio::io::duplex(256);
        let (to_bus_tx, to_bus) = mpsc::channel(4);
        let (from_bus, mut from_bus_rx) = mpsc::channel(16);
        let (shutdown_tx, shutdown) = oneshot::channel();
        let (control_tx, control) = mpsc::channel(1);
        let machine = TpUartLink::new(Instant::now(), ia("1.1.10"), TpUartOptions::default());
        let task = tokio::spawn(run(
            machine,
            ours,
            Reopen::Never,
            Channels {
                to_bus,
                from_bus,
                shutdown,
                control,
            },
        ));
        let mut b = [0u8; 16];
        chip.read_exact(&mut b[..1]).await.unwrap();
        assert_eq!(b[0], 0x01);
        chip.write_all(&[0x03]).await.unwrap();
        chip.read_exact(&mut b[..4]).await.unwrap();
        assert_eq!(&b[..4], &[0x28, 0x11, 0x0A, 0x02]);
        chip.write_all(&[0x07]).await.unwrap();
        let wait = Duration::from_secs(5);
        let state = |e| matches!(e, Some(LinkEvent::State(s)) if s == LinkState::Connected);
        let mut seen = Vec::new();
        while !seen.iter().any(|e: &Option<LinkEvent>| state(e.clone())) {
            seen.push(
                tokio::time::timeout(wait, from_bus_rx.recv())
                    .await
                    .unwrap(),
            );
        }
        to_bus_tx
            .send(group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1))
            .await
            .unwrap();
        let mut frame = [0u8; 18];
        chip.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame[..2], &[0x80, 0xBC]);
        chip.write_all(&[0x8B]).await.unwrap();
        // ETS programmed another address: the chip is told at once.
        control_tx
            .send(
                crate::knx::link::OwnDevice {
                    own: ia("1.1.20"),
                    groups: None,
                    programming_mode: false,
                    identity: crate::knx::device::Identity::default(),
                }
                .into(),
            )
            .await
            .unwrap();
        chip.read_exact(&mut b[..3]).await.unwrap();
        assert_eq!(&b[..3], &[0x28, 0x11, 0x14]);
        shutdown_tx.send(()).unwrap();
        tokio::time::timeout(wait, task).await.unwrap().unwrap();
    }
}
