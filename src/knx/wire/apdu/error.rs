//! Why an APDU or TPDU could not be parsed or emitted.

/// Why a TPDU/APDU could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// A data TPDU needs at least the two APCI octets.
    #[error("APDU too short ({len} bytes, need 2)")]
    TooShort {
        /// Number of bytes available.
        len: usize,
    },
    /// The TPDU is empty (no TPCI octet).
    #[error("empty TPDU")]
    Empty,
    /// The TPCI octet is a reserved combination.
    #[error("reserved TPCI {0:#04x}")]
    ReservedTpci(u8),
    /// A control TPDU (connect, disconnect, ack, nak) has bytes after its TPCI octet.
    #[error("control TPDU {0:#04x} has trailing bytes")]
    ControlTrailing(u8),
    /// The data after the APCI has the wrong length for the service.
    #[error("{service}: {len} data bytes is not a valid length")]
    Length {
        /// The service name.
        service: &'static str,
        /// Number of data bytes after the APCI.
        len: usize,
    },
    /// Reserved bits of the service are not zero.
    #[error("{service}: reserved bits set")]
    Reserved {
        /// The service name.
        service: &'static str,
    },
    /// The count field does not match the number of data bytes.
    #[error("{service}: count {count} but {len} data bytes")]
    CountMismatch {
        /// The service name.
        service: &'static str,
        /// The count in the frame.
        count: u8,
        /// The number of data bytes present.
        len: usize,
    },
    /// A field of the representation is out of range for its bit width (emit only).
    #[error("{service}: field `{field}` out of range")]
    Field {
        /// The service name.
        service: &'static str,
        /// The offending field.
        field: &'static str,
    },
    /// An [`super::Apdu::Unknown`] carries an APCI that this module parses as a known service; emit
    /// refuses it because the bytes would not parse back to the same value.
    #[error("APCI {0:#05x} is a known service; use its variant")]
    KnownApci(u16),
    /// The output buffer is too small (emit only).
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}
