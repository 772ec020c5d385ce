//! KNX wire formats (cEMI, TPCI/APCI, KNXnet/IP, TP-UART): parse and emit, no I/O.
//!
//! This module owns the byte layouts of the KNX frames the gateway sees and sends. It follows
//! smoltcp's split between *views* and *representations*:
//!
//! * a `…Packet<T: AsRef<[u8]>>` is a zero-copy view whose `new_checked` validates all lengths
//!   once, so its accessors never panic;
//! * a `…Repr`-style plain type (for example [`cemi::Cemi`], [`apdu::Tpdu`],
//!   [`knxip::KnxIpFrame`]) holds the decoded fields. `parse` accepts only canonical encodings
//!   (reserved bits zero, lengths consistent), so `emit(parse(bytes)) == bytes` for every byte
//!   sequence that parses. `buffer_len` tells how many bytes `emit` writes; `emit` checks the
//!   field ranges and the buffer size and returns an error instead of writing a bad frame.
//!
//! Rules for everything below: **any byte sequence gives a value or an error, never a panic**.
//! There is no indexing, slicing or unwrapping of input here; reading goes through `Reader`,
//! writing through `Writer`. Unknown code points are kept (`Unknown(..)` variants) so frames
//! round-trip. This module must not do I/O, keep state or know about group objects; answering
//! management services belongs to other layers.
//!
//! Sources: the byte codes are those of the KNX standard (03.06.03 EMI/IMI for cEMI, 03.03.04
//! transport layer, 03.03.07 application layer, 03.08.0x KNXnet/IP) as summarised in
//! `docs/knx-wire.md` §1.4–1.5 and §5, cross-checked against the layouts
//! used by independent open-source stacks (xknx, thelsing/knx). No code was copied.

// Must come before the submodules so that they can use it (textual macro scope).
/// Defines a `u8`/`u16` code enum with an `Unknown` variant, lossless `From` conversions both
/// ways and a `Display` that prints the name (or the hex code for `Unknown`).
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this crate does not know; kept so that frames round-trip.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(code: $repr) -> Self {
                match code {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )*
                    $name::Unknown(code) => code,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self {
                    $( Self::$variant => f.write_str($text), )*
                    Self::Unknown(code) => write!(f, "unknown({code:#04x})"),
                }
            }
        }
    };
}

pub mod apdu;
pub mod cemi;
pub mod knxip;
pub mod tpuart;

/// A bounds-checked reader over a byte slice. Every read returns `None` when the input is too
/// short; nothing here can panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `bytes`.
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// Reads a big-endian `u16`.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let bytes = self.array::<2>()?;
        Some(u16::from_be_bytes(bytes))
    }

    /// Reads a big-endian 24-bit value.
    pub(crate) fn u24(&mut self) -> Option<u32> {
        let [a, b, c] = self.array::<3>()?;
        Some(u32::from_be_bytes([0, a, b, c]))
    }

    /// Reads `N` bytes into an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    /// Reads `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    /// Number of bytes not read yet.
    pub(crate) const fn rest_len(&self) -> usize {
        self.rest.len()
    }

    /// True when all bytes were read.
    pub(crate) const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Everything not read yet; the reader is empty afterwards.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// A bounds-checked writer into a mutable byte slice. Every write returns `None` when the
/// buffer is too small; nothing here can panic.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer positioned at the start of `buf`.
    pub(crate) const fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Writes one byte.
    pub(crate) fn u8(&mut self, value: u8) -> Option<()> {
        self.bytes(&[value])
    }

    /// Writes a big-endian `u16`.
    pub(crate) fn u16(&mut self, value: u16) -> Option<()> {
        self.bytes(&value.to_be_bytes())
    }

    /// Writes a byte slice.
    pub(crate) fn bytes(&mut self, data: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(data.len())?;
        let target = self.buf.get_mut(self.pos..end)?;
        target.copy_from_slice(data);
        self.pos = end;
        Some(())
    }

    /// A sub-writer for the next `n` bytes, which are skipped in this writer.
    pub(crate) fn reserve(&mut self, n: usize) -> Option<&mut [u8]> {
        let end = self.pos.checked_add(n)?;
        let target = self.buf.get_mut(self.pos..end)?;
        self.pos = end;
        Some(target)
    }

    /// Number of bytes written so far.
    pub(crate) const fn position(&self) -> usize {
        self.pos
    }
}

/// Writes `bytes` as lowercase hex separated by spaces (for `Display` impls).
pub(crate) fn fmt_hex(f: &mut std::fmt::Formatter<'_>, bytes: &[u8]) -> std::fmt::Result {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert_eq!(r.take(1), None);
        assert_eq!(r.take(0), Some(&[][..]));
        let mut r = Reader::new(&[0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(r.u24(), Some(0xAA_BBCC));
        assert_eq!(r.u16(), None);
        assert_eq!(r.rest(), &[0xDD]);
    }

    #[test]
    fn writer_refuses_to_overflow() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u16(0x0102), Some(()));
        assert_eq!(w.u16(0x0304), None);
        assert_eq!(w.u8(5), Some(()));
        assert_eq!(w.u8(6), None);
        assert_eq!(w.position(), 3);
        assert_eq!(buf, [1, 2, 5]);
    }
}
