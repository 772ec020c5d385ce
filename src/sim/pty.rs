//! A pair of connected pseudo-terminals from socat, standing in for an RS485 line: the
//! gateway opens one end, the simulated devices the other.

use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `socat -d -d pty,raw,echo=0 pty,raw,echo=0`; the child is killed on drop.
#[derive(Debug)]
pub struct PtyPair {
    /// The gateway's end.
    pub a: PathBuf,
    /// The devices' end.
    pub b: PathBuf,
    child: Child,
}

impl PtyPair {
    /// Starts socat and waits for both pty names.
    pub fn open() -> io::Result<Self> {
        let mut child = Command::new("socat")
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("socat has no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut names = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while names.len() < 2 && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(i) = line.find("PTY is ") {
                        if let Some(name) = line.get(i + 7..) {
                            names.push(PathBuf::from(name.trim()));
                        }
                    }
                }
                _ => break,
            }
        }
        // Keep draining socat's log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        if let (Some(a), Some(b)) = (names.first(), names.get(1)) {
            Ok(Self {
                a: a.clone(),
                b: b.clone(),
                child,
            })
        } else {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other("socat did not report two ptys"))
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
