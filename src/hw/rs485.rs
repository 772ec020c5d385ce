//! The RS485 transceiver's direction switching by the kernel (`TIOCSRS485`).
//!
//! Owns the one ioctl that puts the UART of the RS485 line into the kernel's RS485 mode with
//! the RTS polarity and delays of the board file (`struct serial_rs485` and the `SER_RS485_*`
//! flags of `include/uapi/linux/serial.h`; Documentation/driver-api/serial/serial-rs485.rst).
//! The setting belongs to the UART port and stays when the device is closed and opened again
//! by the Modbus line. A device that refuses (a pty, a USB adapter without RS485 mode: ENOTTY)
//! gives [`HwError::Refused`]; the caller logs it and carries on.

use std::path::Path;

use super::Rs485Port;
use super::backend::HwError;

/// `SER_RS485_ENABLED`.
const ENABLED: u32 = 1 << 0;
/// `SER_RS485_RTS_ON_SEND`.
const RTS_ON_SEND: u32 = 1 << 1;
/// `SER_RS485_RTS_AFTER_SEND`.
const RTS_AFTER_SEND: u32 = 1 << 2;

/// `struct serial_rs485` (32 bytes: flags, two delays in ms, five words of padding).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SerialRs485 {
    /// `SER_RS485_*` flags.
    pub flags: u32,
    /// Delay before send, ms.
    pub delay_rts_before_send: u32,
    /// Delay after send, ms.
    pub delay_rts_after_send: u32,
    padding: [u32; 5],
}

impl SerialRs485 {
    /// The settings of the board file.
    pub fn from_board(port: &Rs485Port) -> Self {
        let mut flags = ENABLED;
        if port.rts_on_send {
            flags |= RTS_ON_SEND;
        }
        if port.rts_after_send {
            flags |= RTS_AFTER_SEND;
        }
        Self {
            flags,
            delay_rts_before_send: port.delay_rts_before_send_ms,
            delay_rts_after_send: port.delay_rts_after_send_ms,
            padding: [0; 5],
        }
    }
}

/// Puts `port.device` into RS485 mode if the board file asks for it (`kernel_rs485`).
pub fn configure(port: &Rs485Port) -> Result<(), HwError> {
    if !port.kernel_rs485 {
        return Ok(());
    }
    apply(&port.device, &SerialRs485::from_board(port))
}

// The one unsafe call of this module: nix's ioctl macro defines an `unsafe fn`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, unreachable_pub, clippy::missing_safety_doc)]
fn apply(device: &Path, settings: &SerialRs485) -> Result<(), HwError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    const WHAT: &str = "RS485 mode (TIOCSRS485)";
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open(device)
        .map_err(|e| HwError::io(WHAT, device.to_owned(), &e))?;
    nix::ioctl_write_ptr_bad!(tiocsrs485, nix::libc::TIOCSRS485, SerialRs485);
    // SAFETY: the fd is open for the whole call and `settings` is a `#[repr(C)]` copy of the
    // kernel's `struct serial_rs485` (32 bytes), which TIOCSRS485 reads (the kernel copies it
    // in with copy_from_user and never keeps the pointer).
    let result = unsafe { tiocsrs485(file.as_raw_fd(), settings) };
    result.map(|_| ()).map_err(|errno| HwError::Refused {
        what: WHAT.to_owned(),
        path: device.to_owned(),
        reason: if errno == nix::errno::Errno::ENOTTY {
            "not an RS485-capable UART (ENOTTY)".to_owned()
        } else {
            errno.desc().to_owned()
        },
    })
}

#[cfg(not(target_os = "linux"))]
fn apply(device: &Path, _settings: &SerialRs485) -> Result<(), HwError> {
    Err(HwError::Unsupported {
        what: format!("RS485 mode on {}", device.display()),
        reason: "needs Linux".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(device: &Path) -> Rs485Port {
        Rs485Port {
            device: device.to_owned(),
            kernel_rs485: true,
            rts_on_send: false,
            rts_after_send: true,
            delay_rts_before_send_ms: 2,
            delay_rts_after_send_ms: 3,
        }
    }

    #[test]
    fn the_struct_is_the_kernels() {
        assert_eq!(std::mem::size_of::<SerialRs485>(), 32);
        let s = SerialRs485::from_board(&port(Path::new("/dev/ttyS2")));
        assert_eq!(
            s.flags,
            ENABLED | RTS_AFTER_SEND,
            "RTS low on send, high after"
        );
        assert_eq!((s.delay_rts_before_send, s.delay_rts_after_send), (2, 3));
    }

    #[test]
    fn a_pty_refuses_rs485_mode_and_a_missing_device_is_named() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let name = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
        ))
        .unwrap();
        let err = configure(&port(&name)).unwrap_err();
        assert!(matches!(err, HwError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("ENOTTY"), "{err}");
        let err = configure(&port(Path::new("/dev/ttyNOPE"))).unwrap_err();
        assert!(err.to_string().contains("/dev/ttyNOPE is missing"), "{err}");
        let mut off = port(Path::new("/dev/ttyNOPE"));
        off.kernel_rs485 = false;
        assert!(configure(&off).is_ok(), "nothing to do");
    }
}
