//! Interface objects 0–4 of mask version 07B0 and the properties ETS reads and writes.
//!
//! Object index = load state machine index, as `knx_master.xml` lists them for
//! `MaskVersion Id="MV-07B0"` (`<InterfaceObjects>`): 0 device object (type 0), 1 group
//! address table (type 1), 2 group association table (type 2), 3 group object table (type 9),
//! 4 application program (type 3). Property ids and datatypes: KNX 03.07.03 (interface
//! objects) §4, §2 (PDT codes); the subset ETS touches for MV-07B0 as the master's
//! `<Resources>` name them (DeviceSerialNumber PID 11, DeviceManufacturerId 12, DeviceOrderId
//! 15, FirmwareVersion 25, ProgrammingMode 54, HardwareType 78, LoadControl/LoadStatus 5,
//! table pointers 7, ApplicationId 13, Stamp 27).

/// Property ids used here (KNX 03.07.03 §4.2, §4.3).
pub mod pid {
    /// PID_OBJECT_TYPE.
    pub const OBJECT_TYPE: u8 = 1;
    /// PID_LOAD_STATE_CONTROL.
    pub const LOAD_STATE_CONTROL: u8 = 5;
    /// PID_RUN_STATE_CONTROL.
    pub const RUN_STATE_CONTROL: u8 = 6;
    /// PID_TABLE_REFERENCE.
    pub const TABLE_REFERENCE: u8 = 7;
    /// PID_SERIAL_NUMBER.
    pub const SERIAL_NUMBER: u8 = 11;
    /// PID_MANUFACTURER_ID.
    pub const MANUFACTURER_ID: u8 = 12;
    /// PID_PROG_VERSION (the application id on object 4).
    pub const PROG_VERSION: u8 = 13;
    /// PID_DEVICE_CONTROL (bit 2 = verify mode).
    pub const DEVICE_CONTROL: u8 = 14;
    /// PID_ORDER_INFO.
    pub const ORDER_INFO: u8 = 15;
    /// PID_VERSION (firmware version).
    pub const VERSION: u8 = 25;
    /// PID_MCB_TABLE (the download stamp).
    pub const MCB_TABLE: u8 = 27;
    /// PID_ERROR_CODE.
    pub const ERROR_CODE: u8 = 28;
    /// PID_PROGMODE.
    pub const PROG_MODE: u8 = 54;
    /// PID_MAX_APDULENGTH.
    pub const MAX_APDU_LENGTH: u8 = 56;
    /// PID_HARDWARE_TYPE.
    pub const HARDWARE_TYPE: u8 = 78;
    /// PID_DEVICE_DESCRIPTOR.
    pub const DEVICE_DESCRIPTOR: u8 = 83;
}

/// Property ids of the KNXnet/IP parameter object (interface object type 11; KNX 03.08.03
/// §2.5, `knx_master.xml` `ObjectType="OT-11"`).
pub mod ip_pid {
    /// PID_PROJECT_INSTALLATION_ID.
    pub const PROJECT_INSTALLATION_ID: u8 = 51;
    /// PID_KNX_INDIVIDUAL_ADDRESS.
    pub const KNX_INDIVIDUAL_ADDRESS: u8 = 52;
    /// PID_CURRENT_IP_ASSIGNMENT_METHOD.
    pub const CURRENT_IP_ASSIGNMENT_METHOD: u8 = 54;
    /// PID_IP_ASSIGNMENT_METHOD.
    pub const IP_ASSIGNMENT_METHOD: u8 = 55;
    /// PID_IP_CAPABILITIES.
    pub const IP_CAPABILITIES: u8 = 56;
    /// PID_CURRENT_IP_ADDRESS.
    pub const CURRENT_IP_ADDRESS: u8 = 57;
    /// PID_CURRENT_SUBNET_MASK.
    pub const CURRENT_SUBNET_MASK: u8 = 58;
    /// PID_CURRENT_DEFAULT_GATEWAY.
    pub const CURRENT_DEFAULT_GATEWAY: u8 = 59;
    /// PID_IP_ADDRESS.
    pub const IP_ADDRESS: u8 = 60;
    /// PID_SUBNET_MASK.
    pub const SUBNET_MASK: u8 = 61;
    /// PID_DEFAULT_GATEWAY.
    pub const DEFAULT_GATEWAY: u8 = 62;
    /// PID_MAC_ADDRESS.
    pub const MAC_ADDRESS: u8 = 64;
    /// PID_SYSTEM_SETUP_MULTICAST_ADDRESS.
    pub const SYSTEM_SETUP_MULTICAST_ADDRESS: u8 = 65;
    /// PID_ROUTING_MULTICAST_ADDRESS.
    pub const ROUTING_MULTICAST_ADDRESS: u8 = 66;
    /// PID_TTL.
    pub const TTL: u8 = 67;
    /// PID_KNXNETIP_DEVICE_CAPABILITIES.
    pub const KNXNETIP_DEVICE_CAPABILITIES: u8 = 68;
    /// PID_KNXNETIP_DEVICE_STATE.
    pub const KNXNETIP_DEVICE_STATE: u8 = 69;
    /// PID_FRIENDLY_NAME.
    pub const FRIENDLY_NAME: u8 = 76;
}

/// Property datatypes (PDT) used here (KNX 03.07.03 §2).
pub mod pdt {
    /// PDT_CONTROL (read 1 byte, write 10 bytes).
    pub const CONTROL: u8 = 0x00;
    /// PDT_UNSIGNED_CHAR.
    pub const UNSIGNED_CHAR: u8 = 0x02;
    /// PDT_UNSIGNED_INT.
    pub const UNSIGNED_INT: u8 = 0x04;
    /// PDT_UNSIGNED_LONG.
    pub const UNSIGNED_LONG: u8 = 0x09;
    /// PDT_BITSET16.
    pub const BITSET16: u8 = 0x34;
    /// PDT_GENERIC_02.
    pub const GENERIC_02: u8 = 0x12;
    /// PDT_GENERIC_05.
    pub const GENERIC_05: u8 = 0x15;
    /// PDT_GENERIC_06.
    pub const GENERIC_06: u8 = 0x16;
    /// PDT_GENERIC_08.
    pub const GENERIC_08: u8 = 0x18;
    /// PDT_GENERIC_10.
    pub const GENERIC_10: u8 = 0x1A;
    /// PDT_VERSION.
    pub const VERSION: u8 = 0x30;
    /// PDT_BITSET8.
    pub const BITSET8: u8 = 0x33;
    /// PDT_ENUM8.
    pub const ENUM8: u8 = 0x35;
}

/// Interface object types (KNX 03.07.03 §4.1).
pub const OBJECT_TYPES: [u16; 5] = [0, 1, 2, 9, 3];

/// Index of the application program object.
pub const APPLICATION_OBJECT: u8 = 4;

/// One property's description: id, datatype, writability, element size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyInfo {
    /// Property id.
    pub id: u8,
    /// Datatype (PDT).
    pub pdt: u8,
    /// Writable by A_PropertyValue_Write.
    pub writable: bool,
    /// Bytes per element when read.
    pub size: usize,
}

const fn p(id: u8, pdt: u8, writable: bool, size: usize) -> PropertyInfo {
    PropertyInfo {
        id,
        pdt,
        writable,
        size,
    }
}

const DEVICE: &[PropertyInfo] = &[
    p(pid::OBJECT_TYPE, pdt::UNSIGNED_INT, false, 2),
    p(pid::SERIAL_NUMBER, pdt::GENERIC_06, false, 6),
    p(pid::MANUFACTURER_ID, pdt::UNSIGNED_INT, false, 2),
    p(pid::DEVICE_CONTROL, pdt::BITSET8, true, 1),
    p(pid::ORDER_INFO, pdt::GENERIC_10, false, 10),
    p(pid::VERSION, pdt::VERSION, false, 2),
    p(pid::PROG_MODE, pdt::BITSET8, true, 1),
    p(pid::MAX_APDU_LENGTH, pdt::UNSIGNED_INT, false, 2),
    p(pid::HARDWARE_TYPE, pdt::GENERIC_06, false, 6),
    p(pid::DEVICE_DESCRIPTOR, pdt::GENERIC_02, false, 2),
];

const TABLE: &[PropertyInfo] = &[
    p(pid::OBJECT_TYPE, pdt::UNSIGNED_INT, false, 2),
    p(pid::LOAD_STATE_CONTROL, pdt::CONTROL, true, 1),
    p(pid::TABLE_REFERENCE, pdt::UNSIGNED_LONG, false, 4),
    p(pid::MCB_TABLE, pdt::GENERIC_08, false, 8),
    p(pid::ERROR_CODE, pdt::ENUM8, false, 1),
];

const APPLICATION: &[PropertyInfo] = &[
    p(pid::OBJECT_TYPE, pdt::UNSIGNED_INT, false, 2),
    p(pid::LOAD_STATE_CONTROL, pdt::CONTROL, true, 1),
    p(pid::RUN_STATE_CONTROL, pdt::CONTROL, false, 1),
    p(pid::TABLE_REFERENCE, pdt::UNSIGNED_LONG, false, 4),
    p(pid::PROG_VERSION, pdt::GENERIC_05, true, 5),
    p(pid::MCB_TABLE, pdt::GENERIC_08, false, 8),
    p(pid::ERROR_CODE, pdt::ENUM8, false, 1),
];

/// Interface object type of the KNXnet/IP parameter object (KNX 03.07.03 §4.1;
/// `knx_master.xml` `OT-11` `OT_KNXIP_PARAMETER`).
pub const KNXIP_PARAMETER_TYPE: u16 = 11;

/// The KNXnet/IP parameter object's properties this device serves, all read-only here: the
/// IP settings come with the application's parameters (spec 8.3.2) and take effect at the
/// next start, so ETS cannot change them through this object. Datatypes: KNX 03.08.03 §2.5;
/// `size` is the bytes of one element (the friendly name has 30 one-byte elements).
const KNXIP_PARAMETER: &[PropertyInfo] = &[
    p(pid::OBJECT_TYPE, pdt::UNSIGNED_INT, false, 2),
    p(ip_pid::PROJECT_INSTALLATION_ID, pdt::UNSIGNED_INT, false, 2),
    p(ip_pid::KNX_INDIVIDUAL_ADDRESS, pdt::UNSIGNED_INT, false, 2),
    p(
        ip_pid::CURRENT_IP_ASSIGNMENT_METHOD,
        pdt::UNSIGNED_CHAR,
        false,
        1,
    ),
    p(ip_pid::IP_ASSIGNMENT_METHOD, pdt::UNSIGNED_CHAR, false, 1),
    p(ip_pid::IP_CAPABILITIES, pdt::BITSET8, false, 1),
    p(ip_pid::CURRENT_IP_ADDRESS, pdt::UNSIGNED_LONG, false, 4),
    p(ip_pid::CURRENT_SUBNET_MASK, pdt::UNSIGNED_LONG, false, 4),
    p(
        ip_pid::CURRENT_DEFAULT_GATEWAY,
        pdt::UNSIGNED_LONG,
        false,
        4,
    ),
    p(ip_pid::IP_ADDRESS, pdt::UNSIGNED_LONG, false, 4),
    p(ip_pid::SUBNET_MASK, pdt::UNSIGNED_LONG, false, 4),
    p(ip_pid::DEFAULT_GATEWAY, pdt::UNSIGNED_LONG, false, 4),
    p(ip_pid::MAC_ADDRESS, pdt::GENERIC_06, false, 6),
    p(
        ip_pid::SYSTEM_SETUP_MULTICAST_ADDRESS,
        pdt::UNSIGNED_LONG,
        false,
        4,
    ),
    p(
        ip_pid::ROUTING_MULTICAST_ADDRESS,
        pdt::UNSIGNED_LONG,
        false,
        4,
    ),
    p(ip_pid::TTL, pdt::UNSIGNED_CHAR, false, 1),
    p(
        ip_pid::KNXNETIP_DEVICE_CAPABILITIES,
        pdt::BITSET16,
        false,
        2,
    ),
    p(ip_pid::KNXNETIP_DEVICE_STATE, pdt::UNSIGNED_CHAR, false, 1),
    p(ip_pid::FRIENDLY_NAME, pdt::UNSIGNED_CHAR, false, 1),
];

/// The description of property `id` of the KNXnet/IP parameter object.
pub fn knxip_find(id: u8) -> Option<PropertyInfo> {
    KNXIP_PARAMETER.iter().find(|p| p.id == id).copied()
}

/// The properties of object `index`, in property-index order.
pub fn properties(index: u8) -> &'static [PropertyInfo] {
    match index {
        0 => DEVICE,
        1..=3 => TABLE,
        APPLICATION_OBJECT => APPLICATION,
        _ => &[],
    }
}

/// The description of property `id` of object `index`.
pub fn find(index: u8, id: u8) -> Option<(u8, PropertyInfo)> {
    properties(index)
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == id)
        .and_then(|(i, p)| Some((u8::try_from(i).ok()?, *p)))
}
