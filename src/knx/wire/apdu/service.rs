//! The service table: every application-layer service once, with its 10-bit APCI code, the
//! constant naming that code, whether the low six APCI bits carry data, and its name.
//!
//! This is the one place a service's wire code and name are written. The `Apdu` variant of
//! the same name holds its data; `codec.rs` owns the layout of that data. Codes: KNX 03.03.07
//! (application layer) §3, as thelsing/knx `src/knx/knx_types.h` (`ApduType`) lists them.

use super::Apdu;

/// Largest value of a 6-bit field inside the APCI octet.
pub const SHORT_MAX: u8 = 0x3F;

/// Mask of the APCI bits that select a service whose low six bits carry data.
const SHORT_SERVICE_MASK: u16 = 0x03C0;

/// How a service occupies the 10-bit APCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bits {
    /// All ten bits are the code.
    Exact,
    /// The upper four bits are the code; the low six bits carry data (short group value,
    /// memory count, descriptor type).
    Short,
}

macro_rules! services {
    ( $( $(#[$doc:meta])* $variant:ident = $konst:ident = $code:literal, $bits:ident, $name:literal; )* ) => {
        $( $(#[$doc])* pub const $konst: u16 = $code; )*

        /// An application-layer service without its data (the kind of an [`Apdu`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Service {
            $( $(#[$doc])* $variant, )*
        }

        impl Service {
            /// Every service, in table order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The APCI code (with the six data bits zero for short services).
            pub const fn code(self) -> u16 {
                match self { $( Self::$variant => $code, )* }
            }

            /// The name as in the KNX standard without the `A_` prefix (used in errors).
            pub const fn short_name(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// The name as in the KNX standard (for logs).
            pub const fn name(self) -> &'static str {
                match self { $( Self::$variant => concat!("A_", $name), )* }
            }

            const fn bits(self) -> Bits {
                match self { $( Self::$variant => Bits::$bits, )* }
            }
        }

        impl Apdu {
            /// The service of this APDU; `None` for [`Apdu::Unknown`].
            pub const fn service(&self) -> Option<Service> {
                match self {
                    $( Self::$variant { .. } => Some(Service::$variant), )*
                    Self::Unknown { .. } => None,
                }
            }
        }
    };
}

services! {
    /// A_GroupValue_Read (03.03.07 §3.1).
    GroupValueRead = APCI_GROUP_VALUE_READ = 0x000, Exact, "GroupValue_Read";
    /// A_GroupValue_Response, short value in the low 6 bits.
    GroupValueResponse = APCI_GROUP_VALUE_RESPONSE = 0x040, Short, "GroupValue_Response";
    /// A_GroupValue_Write, short value in the low 6 bits.
    GroupValueWrite = APCI_GROUP_VALUE_WRITE = 0x080, Short, "GroupValue_Write";
    /// A_IndividualAddress_Write.
    IndividualAddressWrite = APCI_INDIVIDUAL_ADDRESS_WRITE = 0x0C0, Exact, "IndividualAddress_Write";
    /// A_IndividualAddress_Read.
    IndividualAddressRead = APCI_INDIVIDUAL_ADDRESS_READ = 0x100, Exact, "IndividualAddress_Read";
    /// A_IndividualAddress_Response.
    IndividualAddressResponse = APCI_INDIVIDUAL_ADDRESS_RESPONSE = 0x140, Exact, "IndividualAddress_Response";
    /// A_MemoryExt_Write.
    MemoryExtWrite = APCI_MEMORY_EXT_WRITE = 0x1FB, Exact, "MemoryExt_Write";
    /// A_MemoryExt_WriteResponse.
    MemoryExtWriteResponse = APCI_MEMORY_EXT_WRITE_RESPONSE = 0x1FC, Exact, "MemoryExt_WriteResponse";
    /// A_MemoryExt_Read.
    MemoryExtRead = APCI_MEMORY_EXT_READ = 0x1FD, Exact, "MemoryExt_Read";
    /// A_MemoryExt_ReadResponse.
    MemoryExtReadResponse = APCI_MEMORY_EXT_READ_RESPONSE = 0x1FE, Exact, "MemoryExt_ReadResponse";
    /// A_Memory_Read, count in the low 6 bits.
    MemoryRead = APCI_MEMORY_READ = 0x200, Short, "Memory_Read";
    /// A_Memory_Response, count in the low 6 bits.
    MemoryResponse = APCI_MEMORY_RESPONSE = 0x240, Short, "Memory_Response";
    /// A_Memory_Write, count in the low 6 bits.
    MemoryWrite = APCI_MEMORY_WRITE = 0x280, Short, "Memory_Write";
    /// A_UserMemory_Read.
    UserMemoryRead = APCI_USER_MEMORY_READ = 0x2C0, Exact, "UserMemory_Read";
    /// A_UserMemory_Response.
    UserMemoryResponse = APCI_USER_MEMORY_RESPONSE = 0x2C1, Exact, "UserMemory_Response";
    /// A_UserMemory_Write.
    UserMemoryWrite = APCI_USER_MEMORY_WRITE = 0x2C2, Exact, "UserMemory_Write";
    /// A_FunctionPropertyCommand.
    FunctionPropertyCommand = APCI_FUNCTION_PROPERTY_COMMAND = 0x2C7, Exact, "FunctionPropertyCommand";
    /// A_FunctionPropertyState_Read.
    FunctionPropertyStateRead = APCI_FUNCTION_PROPERTY_STATE_READ = 0x2C8, Exact, "FunctionPropertyState_Read";
    /// A_FunctionPropertyState_Response.
    FunctionPropertyStateResponse = APCI_FUNCTION_PROPERTY_STATE_RESPONSE = 0x2C9, Exact, "FunctionPropertyState_Response";
    /// A_DeviceDescriptor_Read, descriptor type in the low 6 bits.
    DeviceDescriptorRead = APCI_DEVICE_DESCRIPTOR_READ = 0x300, Short, "DeviceDescriptor_Read";
    /// A_DeviceDescriptor_Response, descriptor type in the low 6 bits.
    DeviceDescriptorResponse = APCI_DEVICE_DESCRIPTOR_RESPONSE = 0x340, Short, "DeviceDescriptor_Response";
    /// A_Restart (basic restart).
    Restart = APCI_RESTART = 0x380, Exact, "Restart";
    /// A_Restart master reset (erase code and channel follow).
    RestartMasterReset = APCI_RESTART_MASTER_RESET = 0x381, Exact, "Restart(master reset)";
    /// A_Restart_Response (to a master reset).
    RestartResponse = APCI_RESTART_RESPONSE = 0x3A1, Exact, "Restart_Response";
    /// A_Authorize_Request.
    AuthorizeRequest = APCI_AUTHORIZE_REQUEST = 0x3D1, Exact, "Authorize_Request";
    /// A_Authorize_Response.
    AuthorizeResponse = APCI_AUTHORIZE_RESPONSE = 0x3D2, Exact, "Authorize_Response";
    /// A_Key_Write.
    KeyWrite = APCI_KEY_WRITE = 0x3D3, Exact, "Key_Write";
    /// A_Key_Response.
    KeyResponse = APCI_KEY_RESPONSE = 0x3D4, Exact, "Key_Response";
    /// A_PropertyValue_Read.
    PropertyValueRead = APCI_PROPERTY_VALUE_READ = 0x3D5, Exact, "PropertyValue_Read";
    /// A_PropertyValue_Response.
    PropertyValueResponse = APCI_PROPERTY_VALUE_RESPONSE = 0x3D6, Exact, "PropertyValue_Response";
    /// A_PropertyValue_Write.
    PropertyValueWrite = APCI_PROPERTY_VALUE_WRITE = 0x3D7, Exact, "PropertyValue_Write";
    /// A_PropertyDescription_Read.
    PropertyDescriptionRead = APCI_PROPERTY_DESCRIPTION_READ = 0x3D8, Exact, "PropertyDescription_Read";
    /// A_PropertyDescription_Response.
    PropertyDescriptionResponse = APCI_PROPERTY_DESCRIPTION_RESPONSE = 0x3D9, Exact, "PropertyDescription_Response";
    /// A_PropertyValueExt_Read (03.03.07 §3.4.5.1).
    PropertyValueExtRead = APCI_PROPERTY_VALUE_EXT_READ = 0x1CC, Exact, "PropertyValueExt_Read";
    /// A_PropertyValueExt_Response.
    PropertyValueExtResponse = APCI_PROPERTY_VALUE_EXT_RESPONSE = 0x1CD, Exact, "PropertyValueExt_Response";
    /// A_PropertyValueExt_WriteCon (confirmed write).
    PropertyValueExtWriteCon = APCI_PROPERTY_VALUE_EXT_WRITE_CON = 0x1CE, Exact, "PropertyValueExt_WriteCon";
    /// A_PropertyValueExt_WriteConRes (the answer to a confirmed write: a return code).
    PropertyValueExtWriteConRes = APCI_PROPERTY_VALUE_EXT_WRITE_CON_RES = 0x1CF, Exact, "PropertyValueExt_WriteConRes";
    /// A_PropertyValueExt_WriteUnCon (unconfirmed write).
    PropertyValueExtWriteUnCon = APCI_PROPERTY_VALUE_EXT_WRITE_UNCON = 0x1D0, Exact, "PropertyValueExt_WriteUnCon";
    /// A_PropertyValueExt_InfoReport.
    PropertyValueExtInfoReport = APCI_PROPERTY_VALUE_EXT_INFO_REPORT = 0x1D1, Exact, "PropertyValueExt_InfoReport";
    /// A_PropertyExtDescription_Read (03.03.07 §3.4.3.2).
    PropertyExtDescriptionRead = APCI_PROPERTY_EXT_DESCRIPTION_READ = 0x1D2, Exact, "PropertyExtDescription_Read";
    /// A_PropertyExtDescription_Response.
    PropertyExtDescriptionResponse = APCI_PROPERTY_EXT_DESCRIPTION_RESPONSE = 0x1D3, Exact, "PropertyExtDescription_Response";
    /// A_IndividualAddressSerialNumber_Read (03.03.07 §3.3.5).
    IndividualAddressSerialNumberRead = APCI_INDIVIDUAL_ADDRESS_SERIAL_NUMBER_READ = 0x3DC, Exact, "IndividualAddressSerialNumber_Read";
    /// A_IndividualAddressSerialNumber_Response.
    IndividualAddressSerialNumberResponse = APCI_INDIVIDUAL_ADDRESS_SERIAL_NUMBER_RESPONSE = 0x3DD, Exact, "IndividualAddressSerialNumber_Response";
    /// A_IndividualAddressSerialNumber_Write.
    IndividualAddressSerialNumberWrite = APCI_INDIVIDUAL_ADDRESS_SERIAL_NUMBER_WRITE = 0x3DE, Exact, "IndividualAddressSerialNumber_Write";
}

impl Service {
    /// The service a 10-bit APCI selects, if any. For short services the low six bits are
    /// data and do not take part in the match.
    pub fn from_apci(apci: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| match s.bits() {
            Bits::Exact => apci == s.code(),
            Bits::Short => apci & SHORT_SERVICE_MASK == s.code(),
        })
    }

    /// Whether the low six APCI bits carry data for this service.
    pub fn has_short_data(self) -> bool {
        self.bits() == Bits::Short
    }
}

/// Whether `apci` is decoded as a known service by [`Apdu::parse`].
pub fn is_known_apci(apci: u16) -> bool {
    Service::from_apci(apci).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_short_codes_have_free_low_bits() {
        for (i, a) in Service::ALL.iter().enumerate() {
            assert!(a.code() <= 0x03FF, "{a:?}");
            if a.has_short_data() {
                assert_eq!(a.code() & u16::from(SHORT_MAX), 0, "{a:?}");
            }
            for b in Service::ALL.iter().skip(i + 1) {
                assert_ne!(a.code(), b.code(), "{a:?} {b:?}");
                assert_ne!(a.name(), b.name());
            }
            assert_eq!(Service::from_apci(a.code()), Some(*a));
        }
    }

    #[test]
    fn known_apcis_are_the_table() {
        let count = (0u16..=0x03FF).filter(|&apci| is_known_apci(apci)).count();
        // 7 short services × 64 codes, 38 exact ones.
        assert_eq!(count, 7 * 64 + Service::ALL.len() - 7);
    }
}
