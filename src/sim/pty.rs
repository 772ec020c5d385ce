//! A pair of connected pseudo-terminals standing in for an RS485 line: the gateway opens one
//! end, the simulated devices the other.
//!
//! Made in-process, like `socat pty,raw,echo=0 pty,raw,echo=0` would: two ptys from
//! `openpty` (nix), both terminal ends in raw mode without echo and kept open, and a thread
//! that copies what is written on one terminal end to the other (master to master). Each end
//! has a path (`/dev/pts/N`) that serial code opens like a real port.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// Two connected ptys; the copying thread stops on drop.
#[derive(Debug)]
pub struct PtyPair {
    /// The gateway's end.
    pub a: PathBuf,
    /// The devices' end.
    pub b: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The terminal ends, kept open so that the ptys stay up between opens.
    _slaves: [OwnedFd; 2],
}

/// One pty: master, terminal end (raw, no echo) and its path.
fn one() -> io::Result<(OwnedFd, OwnedFd, PathBuf)> {
    let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    let mut t = tcgetattr(&pty.slave).map_err(io::Error::from)?;
    cfmakeraw(&mut t);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))?;
    Ok((pty.master, pty.slave, path))
}

impl PtyPair {
    /// Makes the pair and starts copying.
    pub fn open() -> io::Result<Self> {
        let (ma, sa, a) = one()?;
        let (mb, sb, b) = one()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pty-pair".to_owned())
            .spawn(move || copy(&ma, &mb, &flag))?;
        Ok(Self {
            a,
            b,
            stop,
            thread: Some(thread),
            _slaves: [sa, sb],
        })
    }
}

/// Copies between the two masters until `stop`.
fn copy(ma: &OwnedFd, mb: &OwnedFd, stop: &AtomicBool) {
    let mut buf = [0_u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [
            PollFd::new(ma.as_fd(), PollFlags::POLLIN),
            PollFd::new(mb.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(50_u8)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN)))
            .collect();
        for (i, (from, to)) in [(ma, mb), (mb, ma)].into_iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            match nix::unistd::read(from, &mut buf) {
                Ok(n) => {
                    let mut data = buf.get(..n).unwrap_or_default();
                    while !data.is_empty() {
                        match nix::unistd::write(to, data) {
                            Ok(w) => data = data.get(w..).unwrap_or_default(),
                            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                            Err(_) => return,
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use super::*;

    #[test]
    fn bytes_written_on_one_end_arrive_unchanged_on_the_other() {
        let pair = PtyPair::open().unwrap();
        let mut a = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pair.a)
            .unwrap();
        let mut b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&pair.b)
            .unwrap();
        // Raw: CR, LF, ^C and 0xFF pass untouched; no echo comes back.
        let frame = [0x01, 0x03, 0x0d, 0x0a, 0x03, 0xff, 0x00, 0x11];
        a.write_all(&frame).unwrap();
        let mut got = [0_u8; 8];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, frame);
        b.write_all(&[0x7f, 0x13]).unwrap();
        let mut back = [0_u8; 2];
        a.read_exact(&mut back).unwrap();
        assert_eq!(back, [0x7f, 0x13]);
        drop(pair);
        std::thread::sleep(Duration::from_millis(10));
    }
}
