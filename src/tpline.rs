//! An emulated KNX TP1 line for tests and the demo: N pseudo-terminal ports, each answering
//! like a TP-UART chip, joined by one bus.
//!
//! This module owns the chip side of the TP-UART host protocol and the bus between the chips.
//! It is written from the chip's documented behaviour (`docs/tpuart.md`: TP-UART datasheet,
//! KNX 03.02.02), not from the gateway's link (`knx::link::tpuart`), and uses none of the
//! gateway's KNX code, so that it is an independent peer:
//!
//! * U_Reset.req `01` → U_Reset.ind `03` (address and transmit buffer cleared);
//!   U_State.req `02` → U_State.ind `07`; U_SetAddress `28 hh ll` → the chip then
//!   acknowledges frames to that address itself; U_MxRstCnt `24 xx` is accepted;
//!   U_Busmon.req `05` → bus-monitor mode (frames, then the ACK character `CC`/`0C`/`C0`).
//! * L_Data transmit `80|i b … 40|i cs` → the frame goes on the bus (one at a time, in the
//!   order the hosts finished them). Every other powered port receives it byte by byte in one
//!   write; during the [`LineOptions::ack_window`] the receiving hosts answer with
//!   U_AckInformation `10|nack 04|busy 02|addressed 01`; a chip whose address was set
//!   acknowledges individually addressed frames to it by itself. BUSY beats NACK beats ACK
//!   (wired-AND on the bus). Without an ACK the frame is repeated up to 3 times with the
//!   repeat flag (CTRL bit 5) cleared, as the chip does; then the sender gets L_Data.con
//!   negative `0B`, else positive `8B`. With [`LineOptions::echo`] the sender also receives
//!   its own frame before the confirmation, as hosts of real chips expect (knxd, thelsing/knx).
//! * Bus voltage can be switched off ([`TpLine::set_power`]): the chips fall silent and drop
//!   what the hosts send; when it returns each chip sends U_Reset.ind.
//! * Every transmission is reported to the monitor ([`TpLine::monitor`]).
//!
//! Pseudo-terminals ignore parity and baud rate; the hosts may set 19200 8E1 all the same. A
//! port's terminal starts raw at 1200 baud so that a host's first 19200 8E1 set-up changes
//! something (knxd fails on a set-up that changes nothing).

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Repetitions of an unacknowledged frame (KNX 03.02.02; the TP-UART's default).
pub const REPETITIONS: u8 = 3;
/// Wait before repeating a frame that got BUSY.
pub const BUSY_WAIT: Duration = Duration::from_millis(15);

/// Tunables of the emulated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineOptions {
    /// How long receivers have to send U_AckInformation after a frame was delivered. On TP1
    /// a frame takes about 20 ms including the acknowledgement; on pseudo-terminals the
    /// hosts' answers take a few hundred microseconds (knxd) to a few milliseconds.
    pub ack_window: Duration,
    /// The sender receives its own frame before L_Data.con.
    pub echo: bool,
    /// Hold each transmission for as long as it takes on TP1 (9600 bit/s, 13 bit times per
    /// character, 50 bit times of idle line before a frame, the acknowledgement after 15):
    /// about 20 ms for a short group telegram, so the line carries about 50 telegrams/s.
    /// Off, frames cross as fast as the hosts answer.
    pub tp1_timing: bool,
}

/// One bit on TP1 (9600 bit/s).
pub const BIT_TIME: Duration = Duration::from_nanos(104_167);

/// How long `len` frame bytes and their acknowledgement occupy TP1: 50 bit times idle, 13
/// per character, 15 before the acknowledgement character.
pub fn tp1_duration(len: usize) -> Duration {
    let bits = 50 + 13 * u32::try_from(len).unwrap_or(u32::MAX / 32) + 15 + 13;
    BIT_TIME * bits
}

impl Default for LineOptions {
    fn default() -> Self {
        Self {
            ack_window: Duration::from_millis(20),
            echo: true,
            tp1_timing: false,
        }
    }
}

/// The acknowledgement a transmission got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Some receiver acknowledged.
    Ack,
    /// Some receiver answered NACK.
    Nack,
    /// Some receiver was busy.
    Busy,
    /// Nobody answered.
    None,
}

/// One transmission on the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitored {
    /// When it went on the line.
    pub at: Instant,
    /// The sending port.
    pub port: usize,
    /// The frame as on the bus (checksum included).
    pub frame: Vec<u8>,
    /// The acknowledgement.
    pub ack: Ack,
}

impl fmt::Display for Monitored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {} ", self.port)?;
        for b in &self.frame {
            write!(f, "{b:02X}")?;
        }
        write!(f, " {:?}", self.ack)
    }
}

/// Why the line could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// A pseudo-terminal could not be created or configured.
    #[error("pseudo-terminal: {0}")]
    Pty(#[from] nix::Error),
    /// The tokio reactor refused the descriptor.
    #[error("registering the pseudo-terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// A running emulated line.
#[derive(Debug)]
pub struct TpLine {
    paths: Vec<PathBuf>,
    monitor: broadcast::Sender<Monitored>,
    power: watch::Sender<bool>,
    task: JoinHandle<()>,
    readers: Vec<JoinHandle<()>>,
}

impl TpLine {
    /// Creates `ports` pseudo-terminals and starts the line. Must be called inside a tokio
    /// runtime.
    pub fn start(ports: usize, options: LineOptions) -> Result<Self, LineError> {
        let (events_tx, events_rx) = mpsc::channel(256);
        let (monitor, _) = broadcast::channel(4096);
        let (power, power_rx) = watch::channel(true);
        let mut paths = Vec::new();
        let mut masters = Vec::new();
        let mut readers = Vec::new();
        for index in 0..ports {
            let pty = nix::pty::openpty(None, None)?;
            let path = nix::unistd::ttyname(pty.slave.as_fd())?;
            let mut t = nix::sys::termios::tcgetattr(pty.slave.as_fd())?;
            nix::sys::termios::cfmakeraw(&mut t);
            nix::sys::termios::cfsetspeed(&mut t, nix::sys::termios::BaudRate::B1200)?;
            nix::sys::termios::tcsetattr(
                pty.slave.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &t,
            )?;
            set_nonblocking(&pty.master)?;
            // The descriptor is owned by the AsyncFd and closed only when it is dropped, which
            // is what tokio's register() asks for; `new` is deprecated for callers who cannot
            // promise that.
            #[expect(deprecated, reason = "the AsyncFd owns the descriptor (sound here)")]
            let master = Arc::new(AsyncFd::new(pty.master)?);
            paths.push(path);
            readers.push(tokio::spawn(read_port(
                index,
                Arc::clone(&master),
                pty.slave,
                events_tx.clone(),
            )));
            masters.push(master);
        }
        let bus = Bus {
            options,
            chips: masters
                .into_iter()
                .map(|fd| Chip {
                    fd,
                    address: None,
                    busmon: false,
                    answer: Answer::NotAsked,
                })
                .collect(),
            monitor: monitor.clone(),
            powered: true,
        };
        let task = tokio::spawn(bus.run(events_rx, power_rx));
        Ok(Self {
            paths,
            monitor,
            power,
            task,
            readers,
        })
    }

    /// The device paths of the ports (`/dev/pts/N`), in port order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Every transmission from now on.
    pub fn monitor(&self) -> broadcast::Receiver<Monitored> {
        self.monitor.subscribe()
    }

    /// Switches the bus voltage.
    pub fn set_power(&self, on: bool) {
        let _ = self.power.send(on);
    }
}

impl Drop for TpLine {
    fn drop(&mut self) {
        self.task.abort();
        for r in &self.readers {
            r.abort();
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> Result<(), nix::Error> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// What a host asked its chip for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostService {
    Reset,
    State,
    Busmon,
    SetAddress(u16),
    AckInformation(u8),
    Transmit(Vec<u8>),
}

/// The chip's parser of host bytes (services may be split over reads).
#[derive(Debug, Default)]
struct HostParser {
    /// Bytes of a multi-byte service (`28 hh ll`, `24 xx`).
    pending: Vec<u8>,
    /// The frame being handed over for transmission.
    frame: Vec<u8>,
    /// A `80|i` / `40|i` control byte waiting for its data byte.
    data_for: Option<(u8, bool)>,
}

impl HostParser {
    fn feed(&mut self, byte: u8, out: &mut Vec<HostService>) {
        if let Some((index, last)) = self.data_for.take() {
            if usize::from(index) == self.frame.len() % 64 {
                self.frame.push(byte);
            } else {
                // Out of sequence: the chip discards the frame.
                self.frame.clear();
                return;
            }
            if last {
                out.push(HostService::Transmit(std::mem::take(&mut self.frame)));
            }
            return;
        }
        if let Some(&first) = self.pending.first() {
            self.pending.push(byte);
            let needed = if first == 0x28 { 3 } else { 2 };
            if self.pending.len() == needed {
                if first == 0x28 {
                    let hi = self.pending.get(1).copied().unwrap_or(0);
                    out.push(HostService::SetAddress(u16::from_be_bytes([hi, byte])));
                }
                self.pending.clear();
            }
            return;
        }
        match byte {
            0x01 => {
                self.frame.clear();
                out.push(HostService::Reset);
            }
            0x02 => out.push(HostService::State),
            0x05 => out.push(HostService::Busmon),
            0x10..=0x17 => out.push(HostService::AckInformation(byte)),
            0x24 | 0x28 => self.pending.push(byte),
            b if b & 0xC0 == 0x80 => self.data_for = Some((b & 0x3F, false)),
            b if b & 0xC0 == 0x40 => self.data_for = Some((b & 0x3F, true)),
            // U_ProductID, busy mode, CRC and the rest: not emulated.
            _ => {}
        }
    }
}

/// Reads one port's host bytes and forwards the services to the bus. Holds the slave side
/// open, so that the master never sees a hang-up while no host has the port open.
async fn read_port(
    index: usize,
    master: Arc<AsyncFd<OwnedFd>>,
    slave: OwnedFd,
    events: mpsc::Sender<(usize, HostService)>,
) {
    let _keep = slave;
    let mut parser = HostParser::default();
    let mut buf = [0u8; 256];
    loop {
        let Ok(mut guard) = master.readable().await else {
            return;
        };
        let read = guard.try_io(|fd| {
            nix::unistd::read(fd.get_ref().as_fd(), &mut buf).map_err(std::io::Error::from)
        });
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::debug!(port = index, "pty read: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(_would_block) => continue,
        };
        let mut services = Vec::new();
        for &b in buf.get(..n).unwrap_or_default() {
            parser.feed(b, &mut services);
        }
        for s in services {
            if events.send((index, s)).await.is_err() {
                return;
            }
        }
    }
}

struct Chip {
    fd: Arc<AsyncFd<OwnedFd>>,
    address: Option<u16>,
    busmon: bool,
    /// The host's U_AckInformation for the frame being delivered.
    answer: Answer,
}

/// A receiving host's answer to the frame on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Not a receiver of this frame (the sender, a bus monitor, no frame).
    NotAsked,
    /// A receiver that has not answered yet.
    Waiting,
    /// Its U_AckInformation byte.
    Got(u8),
}

struct Bus {
    options: LineOptions,
    chips: Vec<Chip>,
    monitor: broadcast::Sender<Monitored>,
    powered: bool,
}

/// A frame on its way over the bus.
struct OnLine {
    sender: usize,
    frame: Vec<u8>,
    /// Transmissions so far.
    sent: u8,
    window_end: Instant,
    /// Not concluded before this instant (TP1 timing).
    busy_until: Instant,
}

async fn write_all(fd: &AsyncFd<OwnedFd>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let Ok(mut guard) = fd.writable().await else {
            return;
        };
        match guard
            .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(std::io::Error::from))
        {
            Ok(Ok(n)) => bytes = bytes.get(n..).unwrap_or_default(),
            Ok(Err(e)) => {
                tracing::debug!("pty write: {e}");
                return;
            }
            Err(_would_block) => {}
        }
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    !bytes.iter().fold(0, |a, b| a ^ b)
}

/// Destination and whether it is a group address, from a TP1 frame's header.
fn destination(frame: &[u8]) -> Option<(u16, bool)> {
    let ctrl = *frame.first()?;
    if ctrl & 0x80 != 0 {
        let hi = *frame.get(3)?;
        let lo = *frame.get(4)?;
        Some((u16::from_be_bytes([hi, lo]), frame.get(5)? & 0x80 != 0))
    } else {
        let hi = *frame.get(4)?;
        let lo = *frame.get(5)?;
        Some((u16::from_be_bytes([hi, lo]), frame.get(1)? & 0x80 != 0))
    }
}

impl Bus {
    async fn write(&self, port: usize, bytes: &[u8]) {
        if let Some(chip) = self.chips.get(port) {
            write_all(&chip.fd, bytes).await;
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<(usize, HostService)>,
        mut power: watch::Receiver<bool>,
    ) {
        let mut queue: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
        let mut on_line: Option<OnLine> = None;
        let mut power_open = true;
        loop {
            if on_line.is_none()
                && self.powered
                && let Some((sender, frame)) = queue.pop_front()
            {
                on_line = Some(self.put_on_line(sender, frame, 0).await);
            }
            // Concluded once every receiver answered (or the window is over), and not before
            // the frame's TP1 time when that is modelled.
            let conclude_at = on_line.as_ref().map(|o| {
                let answered = self
                    .chips
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != o.sender)
                    .all(|(_, c)| c.answer != Answer::Waiting);
                if answered {
                    o.busy_until
                } else {
                    o.window_end.max(o.busy_until)
                }
            });
            if conclude_at.is_some_and(|t| Instant::now() >= t)
                && let Some(o) = on_line.take()
            {
                on_line = self.conclude(o).await;
                continue;
            }
            let window_end = conclude_at;
            let window = async {
                match window_end {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => {
                    let Some((port, service)) = ev else { return };
                    if !self.powered {
                        continue;
                    }
                    match service {
                        HostService::Reset => {
                            queue.retain(|(p, _)| *p != port);
                            if let Some(chip) = self.chips.get_mut(port) {
                                chip.address = None;
                                chip.busmon = false;
                            }
                            self.write(port, &[0x03]).await;
                        }
                        HostService::State => self.write(port, &[0x07]).await,
                        HostService::Busmon => {
                            if let Some(chip) = self.chips.get_mut(port) {
                                chip.busmon = true;
                            }
                        }
                        HostService::SetAddress(a) => {
                            if let Some(chip) = self.chips.get_mut(port) {
                                chip.address = Some(a);
                            }
                        }
                        HostService::AckInformation(b) => {
                            if let Some(chip) = self.chips.get_mut(port)
                                && chip.answer == Answer::Waiting
                            {
                                chip.answer = Answer::Got(b);
                            }
                        }
                        HostService::Transmit(frame) => queue.push_back((port, frame)),
                    }
                }
                () = window => {
                    if let Some(o) = on_line.take() {
                        on_line = self.conclude(o).await;
                    }
                }
                changed = power.changed(), if power_open => {
                    if changed.is_err() {
                        power_open = false;
                        continue;
                    }
                    let on = *power.borrow_and_update();
                    if on != self.powered {
                        self.powered = on;
                        on_line = None;
                        queue.clear();
                        for chip in &mut self.chips {
                            chip.address = None;
                            chip.busmon = false;
                            chip.answer = Answer::NotAsked;
                        }
                        if on {
                            for port in 0..self.chips.len() {
                                self.write(port, &[0x03]).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends transmission number `sent + 1` of `frame` to every port.
    async fn put_on_line(&mut self, sender: usize, mut frame: Vec<u8>, sent: u8) -> OnLine {
        if sent > 0 {
            if let Some(ctrl) = frame.first_mut() {
                *ctrl &= !0x20;
            }
            let body_len = frame.len().saturating_sub(1);
            let cs = checksum(frame.get(..body_len).unwrap_or_default());
            if let Some(last) = frame.last_mut() {
                *last = cs;
            }
        }
        for port in 0..self.chips.len() {
            let receiving = port != sender;
            if let Some(chip) = self.chips.get_mut(port) {
                chip.answer = if receiving && !chip.busmon {
                    Answer::Waiting
                } else {
                    Answer::NotAsked
                };
            }
            if receiving || self.options.echo {
                self.write(port, &frame).await;
            }
        }
        let now = Instant::now();
        let busy_until = if self.options.tp1_timing {
            now + tp1_duration(frame.len())
        } else {
            now
        };
        OnLine {
            sender,
            frame,
            sent: sent + 1,
            window_end: now + self.options.ack_window,
            busy_until,
        }
    }

    /// The window of `o` is over: acknowledge, repeat or give up.
    async fn conclude(&mut self, o: OnLine) -> Option<OnLine> {
        let dest = destination(&o.frame);
        let mut ack = false;
        let mut nack = false;
        let mut busy = false;
        for (port, chip) in self.chips.iter_mut().enumerate() {
            if port == o.sender {
                continue;
            }
            if let Answer::Got(b) = chip.answer {
                busy |= b & 0x02 != 0;
                nack |= b & 0x04 != 0;
                ack |= b & 0x01 != 0;
            }
            if let (Some((d, false)), Some(a)) = (dest, chip.address)
                && d == a
            {
                ack = true;
            }
            chip.answer = Answer::NotAsked;
        }
        let verdict = if busy {
            Ack::Busy
        } else if nack {
            Ack::Nack
        } else if ack {
            Ack::Ack
        } else {
            Ack::None
        };
        let _ = self.monitor.send(Monitored {
            at: Instant::now(),
            port: o.sender,
            frame: o.frame.clone(),
            ack: verdict,
        });
        let ack_char = match verdict {
            Ack::Ack => Some(0xCC),
            Ack::Nack => Some(0x0C),
            Ack::Busy => Some(0xC0),
            Ack::None => None,
        };
        if let Some(c) = ack_char {
            for port in 0..self.chips.len() {
                if self.chips.get(port).is_some_and(|chip| chip.busmon) {
                    self.write(port, &[c]).await;
                }
            }
        }
        if verdict == Ack::Ack {
            self.write(o.sender, &[0x8B]).await;
            return None;
        }
        if o.sent > REPETITIONS {
            self.write(o.sender, &[0x0B]).await;
            return None;
        }
        if verdict == Ack::Busy {
            tokio::time::sleep(BUSY_WAIT).await;
        }
        Some(self.put_on_line(o.sender, o.frame, o.sent).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_services_are_parsed_across_reads() {
        let mut p = HostParser::default();
        let mut out = Vec::new();
        for b in [0x01, 0x28, 0x11] {
            p.feed(b, &mut out);
        }
        p.feed(0x0A, &mut out);
        p.feed(0x02, &mut out);
        p.feed(0x11, &mut out);
        for b in [0x80, 0xBC, 0x81, 0x11, 0x42, 0xFF] {
            p.feed(b, &mut out);
        }
        assert_eq!(
            out,
            [
                HostService::Reset,
                HostService::SetAddress(0x110A),
                HostService::State,
                HostService::AckInformation(0x11),
                HostService::Transmit(vec![0xBC, 0x11, 0xFF]),
            ]
        );
        // An index out of sequence drops the frame.
        out.clear();
        for b in [0x80, 0xBC, 0x82, 0x11, 0x40, 0x00] {
            p.feed(b, &mut out);
        }
        assert!(out.is_empty() || out == [HostService::Transmit(vec![0x00])]);
    }

    #[test]
    fn destinations() {
        let std = [0xBC, 0x11, 0x0A, 0x0A, 0x03, 0xE1, 0x00, 0x81, 0x31];
        assert_eq!(destination(&std), Some((0x0A03, true)));
        let ext = [0x3C, 0x60, 0x11, 0x0A, 0x11, 0x0B, 0x01, 0x00, 0x80, 0x00];
        assert_eq!(destination(&ext), Some((0x110B, false)));
        assert_eq!(checksum(&std[..8]), 0x31);
    }

    /// Two hosts on the line, played by the test through the pty paths.
    #[tokio::test]
    async fn frames_cross_the_line_with_ack_and_confirmation() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let line = TpLine::start(2, LineOptions::default()).unwrap();
        let mut monitor = line.monitor();
        let open = |p: &PathBuf| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .unwrap();
            let mut t = nix::sys::termios::tcgetattr(&f).unwrap();
            nix::sys::termios::cfmakeraw(&mut t);
            nix::sys::termios::tcsetattr(&f, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
            tokio::fs::File::from_std(f)
        };
        let mut a = open(&line.paths()[0]);
        let mut b = open(&line.paths()[1]);
        let mut buf = [0u8; 32];
        a.write_all(&[0x01]).await.unwrap();
        a.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(buf[0], 0x03);
        a.write_all(&[0x28, 0x11, 0x0A, 0x02]).await.unwrap();
        a.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(buf[0], 0x07);
        // B sends a frame to A's individual address: A's chip acknowledges it.
        let mut frame = vec![0xB0, 0x11, 0x0B, 0x11, 0x0A, 0x60, 0x80];
        frame.push(checksum(&frame));
        let mut enc = Vec::new();
        for (i, byte) in frame.iter().enumerate() {
            let i = u8::try_from(i).unwrap();
            enc.push(if usize::from(i) == frame.len() - 1 {
                0x40 | i
            } else {
                0x80 | i
            });
            enc.push(*byte);
        }
        b.write_all(&enc).await.unwrap();
        let mut got = vec![0u8; frame.len()];
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(got, frame);
        let mut echo_and_con = vec![0u8; frame.len() + 1];
        b.read_exact(&mut echo_and_con).await.unwrap();
        assert_eq!(&echo_and_con[..frame.len()], &frame[..]);
        assert_eq!(echo_and_con[frame.len()], 0x8B);
        let seen = monitor.recv().await.unwrap();
        assert_eq!((seen.port, seen.ack), (1, Ack::Ack));
    }
}
