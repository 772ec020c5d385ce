//! The structured fields that several services share: the group value payload and the
//! property addressing and description records.

use std::fmt;

use crate::knx::wire::fmt_hex;

/// The value of A_GroupValue_Write/Response: short (≤ 6 bits inside the APCI octet, used by
/// DPT 1.x) or long (bytes after the APCI).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// A value of at most 6 bits (0..=[`SHORT_MAX`](super::SHORT_MAX)) carried in the APCI octet.
    Short(u8),
    /// One or more bytes following the APCI. Must not be empty.
    Long(Vec<u8>),
}

impl Payload {
    /// Number of bytes the payload adds after the two APCI octets.
    pub fn extra_len(&self) -> usize {
        match self {
            Self::Short(_) => 0,
            Self::Long(bytes) => bytes.len(),
        }
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(v) => write!(f, "{v:#04x}"),
            Self::Long(bytes) => {
                f.write_str("[")?;
                fmt_hex(f, bytes)?;
                f.write_str("]")
            }
        }
    }
}

/// Addressing of A_PropertyValue_* services: object index, property id, number of elements
/// (4 bits) and start index (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyRef {
    /// Interface object index.
    pub object_index: u8,
    /// Property id (PID).
    pub property_id: u8,
    /// Number of elements, 0..=15 (0 in a response signals an error).
    pub count: u8,
    /// Start index, 0..=4095 (0 reads the current number of elements).
    pub start_index: u16,
}

impl fmt::Display for PropertyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "obj {} pid {} noe {} start {}",
            self.object_index, self.property_id, self.count, self.start_index
        )
    }
}

/// The body of A_PropertyDescription_Response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyDescription {
    /// Interface object index.
    pub object_index: u8,
    /// Property id (PID).
    pub property_id: u8,
    /// Property index within the object.
    pub property_index: u8,
    /// Whether the property is writable (bit 7 of the type octet).
    pub write_enable: bool,
    /// Property datatype (PDT), 0..=63.
    pub property_type: u8,
    /// Maximum number of elements, 0..=4095.
    pub max_elements: u16,
    /// Read access level, 0..=15.
    pub read_level: u8,
    /// Write access level, 0..=15.
    pub write_level: u8,
}

/// Addressing of A_PropertyValueExt_* services: interface object type (16 bits), object
/// instance (12 bits), property id (12 bits), number of elements (8 bits) and start index
/// (16 bits); on the wire `tt tt ii ip pp nn ss ss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyExtRef {
    /// Interface object type (e.g. 0 = device object).
    pub object_type: u16,
    /// Object instance, 0..=4095 (1 is the first instance).
    pub object_instance: u16,
    /// Property id, 0..=4095.
    pub property_id: u16,
    /// Number of elements (0 in a response signals an error).
    pub count: u8,
    /// Start index (0 reads the current number of elements).
    pub start_index: u16,
}

impl fmt::Display for PropertyExtRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} inst {} pid {} noe {} start {}",
            self.object_type, self.object_instance, self.property_id, self.count, self.start_index
        )
    }
}

/// Selection of A_PropertyExtDescription_Read: the object and property as in
/// [`PropertyExtRef`], a description type (4 bits) and a property index (12 bits; used when
/// the property id is 0). On the wire `tt tt ii ip pp dx xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyExtSelector {
    /// Interface object type.
    pub object_type: u16,
    /// Object instance, 0..=4095.
    pub object_instance: u16,
    /// Property id, 0..=4095 (0 = select by index).
    pub property_id: u16,
    /// Property description type, 0..=15.
    pub description_type: u8,
    /// Property index, 0..=4095.
    pub property_index: u16,
}

impl fmt::Display for PropertyExtSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} inst {} pid {} desc {} idx {}",
            self.object_type,
            self.object_instance,
            self.property_id,
            self.description_type,
            self.property_index
        )
    }
}

/// The body of A_PropertyExtDescription_Response: the selector, then the datapoint type
/// (main and sub number, 2 bytes each), write-enable bit 7 + PDT (6 bits; bit 6 reserved),
/// maximum number of elements (16 bits) and access levels (read high nibble, write low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyExtDescription {
    /// Which property is described.
    pub selector: PropertyExtSelector,
    /// DPT main number.
    pub dpt_main: u16,
    /// DPT sub number.
    pub dpt_sub: u16,
    /// Whether the property is writable.
    pub write_enable: bool,
    /// Property datatype (PDT), 0..=63.
    pub property_type: u8,
    /// Maximum number of elements.
    pub max_elements: u16,
    /// Read access level, 0..=15.
    pub read_level: u8,
    /// Write access level, 0..=15.
    pub write_level: u8,
}
