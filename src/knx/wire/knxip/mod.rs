//! KNXnet/IP frames (core, tunnelling, device management, routing), parsed and emitted without
//! panics.
//!
//! This module owns the KNXnet/IP byte layouts (KNX 03.08.02 Core, 03.08.03 Management,
//! 03.08.04 Tunnelling, 03.08.05 Routing; codes cross-checked against xknx's `xknx/knxip`,
//! read for facts only):
//!
//! * header `06 10 ss ss ll ll`: header length 6, protocol version 1.0, service type,
//!   total length (header included), checked against the buffer;
//! * HPAI `08 pp a a a a PP PP` (host protocol 01 UDP / 02 TCP, IPv4 address, port);
//! * CRI/CRD (connection type 03 device management, 04 tunnel with KNX layer 02 link layer,
//!   04 raw, 80 bus monitor; the CRD of a tunnel carries the assigned individual address);
//! * connection header `04 cc ss rr` of tunnelling and device-configuration frames;
//! * DIBs: device information (0x01, 54 bytes) and supported service families (0x02); other
//!   DIB types are kept raw.
//!
//! [`KnxIpPacket`] is the zero-copy header view, [`KnxIpFrame`] the representation; cEMI
//! payloads are decoded by [`super::cemi`]. This module must not open sockets, keep
//! connection state or pick channel ids.

use std::net::Ipv4Addr;

mod connection;
mod dib;
mod frame;
#[cfg(test)]
mod tests;

pub use connection::{Crd, Cri, Hpai};
pub use dib::{DeviceDescription, DeviceInfo, FRIENDLY_NAME_LEN, RawDib, ServiceFamily};
pub use frame::KnxIpFrame;

use super::Reader;
use super::cemi::CemiError;
use connection::{parse_struct, write_struct};

/// Length of the KNXnet/IP header.
pub const HEADER_LEN: usize = 6;
/// KNXnet/IP protocol version 1.0.
pub const PROTOCOL_VERSION: u8 = 0x10;
/// The default KNXnet/IP UDP port.
pub const DEFAULT_PORT: u16 = 3671;
/// The default routing multicast address.
pub const ROUTING_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 23, 12);

code_enum! {
    /// KNXnet/IP service type identifier (03.08.01 §5.3).
    pub enum ServiceType: u16 {
        /// SEARCH_REQUEST.
        SearchRequest = 0x0201 => "SEARCH_REQUEST",
        /// SEARCH_RESPONSE.
        SearchResponse = 0x0202 => "SEARCH_RESPONSE",
        /// DESCRIPTION_REQUEST.
        DescriptionRequest = 0x0203 => "DESCRIPTION_REQUEST",
        /// DESCRIPTION_RESPONSE.
        DescriptionResponse = 0x0204 => "DESCRIPTION_RESPONSE",
        /// CONNECT_REQUEST.
        ConnectRequest = 0x0205 => "CONNECT_REQUEST",
        /// CONNECT_RESPONSE.
        ConnectResponse = 0x0206 => "CONNECT_RESPONSE",
        /// CONNECTIONSTATE_REQUEST.
        ConnectionStateRequest = 0x0207 => "CONNECTIONSTATE_REQUEST",
        /// CONNECTIONSTATE_RESPONSE.
        ConnectionStateResponse = 0x0208 => "CONNECTIONSTATE_RESPONSE",
        /// DISCONNECT_REQUEST.
        DisconnectRequest = 0x0209 => "DISCONNECT_REQUEST",
        /// DISCONNECT_RESPONSE.
        DisconnectResponse = 0x020A => "DISCONNECT_RESPONSE",
        /// SEARCH_REQUEST_EXTENDED (kept raw).
        SearchRequestExtended = 0x020B => "SEARCH_REQUEST_EXTENDED",
        /// SEARCH_RESPONSE_EXTENDED (kept raw).
        SearchResponseExtended = 0x020C => "SEARCH_RESPONSE_EXTENDED",
        /// DEVICE_CONFIGURATION_REQUEST.
        DeviceConfigurationRequest = 0x0310 => "DEVICE_CONFIGURATION_REQUEST",
        /// DEVICE_CONFIGURATION_ACK.
        DeviceConfigurationAck = 0x0311 => "DEVICE_CONFIGURATION_ACK",
        /// TUNNELLING_REQUEST.
        TunnellingRequest = 0x0420 => "TUNNELLING_REQUEST",
        /// TUNNELLING_ACK.
        TunnellingAck = 0x0421 => "TUNNELLING_ACK",
        /// TUNNELLING_FEATURE_GET (kept raw).
        TunnellingFeatureGet = 0x0422 => "TUNNELLING_FEATURE_GET",
        /// TUNNELLING_FEATURE_RESPONSE (kept raw).
        TunnellingFeatureResponse = 0x0423 => "TUNNELLING_FEATURE_RESPONSE",
        /// TUNNELLING_FEATURE_SET (kept raw).
        TunnellingFeatureSet = 0x0424 => "TUNNELLING_FEATURE_SET",
        /// TUNNELLING_FEATURE_INFO (kept raw).
        TunnellingFeatureInfo = 0x0425 => "TUNNELLING_FEATURE_INFO",
        /// ROUTING_INDICATION.
        RoutingIndication = 0x0530 => "ROUTING_INDICATION",
        /// ROUTING_LOST_MESSAGE.
        RoutingLostMessage = 0x0531 => "ROUTING_LOST_MESSAGE",
        /// ROUTING_BUSY.
        RoutingBusy = 0x0532 => "ROUTING_BUSY",
        /// ROUTING_SYSTEM_BROADCAST (kept raw).
        RoutingSystemBroadcast = 0x0533 => "ROUTING_SYSTEM_BROADCAST",
        /// SECURE_WRAPPER (kept raw).
        SecureWrapper = 0x0950 => "SECURE_WRAPPER",
    }
}

code_enum! {
    /// KNXnet/IP status and error codes (03.08.02 §7.5.4, 03.08.04 §4.4).
    pub enum Status: u8 {
        /// E_NO_ERROR.
        NoError = 0x00 => "E_NO_ERROR",
        /// E_HOST_PROTOCOL_TYPE: the host protocol is not supported.
        HostProtocolType = 0x01 => "E_HOST_PROTOCOL_TYPE",
        /// E_VERSION_NOT_SUPPORTED.
        VersionNotSupported = 0x02 => "E_VERSION_NOT_SUPPORTED",
        /// E_SEQUENCE_NUMBER: out-of-order sequence number.
        SequenceNumber = 0x04 => "E_SEQUENCE_NUMBER",
        /// E_ERROR: unspecified error.
        Error = 0x0F => "E_ERROR",
        /// E_CONNECTION_ID: no active connection with this channel id.
        ConnectionId = 0x21 => "E_CONNECTION_ID",
        /// E_CONNECTION_TYPE: the connection type is not supported.
        ConnectionType = 0x22 => "E_CONNECTION_TYPE",
        /// E_CONNECTION_OPTION: a connection option is not supported.
        ConnectionOption = 0x23 => "E_CONNECTION_OPTION",
        /// E_NO_MORE_CONNECTIONS: all connections are in use.
        NoMoreConnections = 0x24 => "E_NO_MORE_CONNECTIONS",
        /// E_NO_MORE_UNIQUE_CONNECTIONS.
        NoMoreUniqueConnections = 0x25 => "E_NO_MORE_UNIQUE_CONNECTIONS",
        /// E_DATA_CONNECTION: error on the data connection.
        DataConnection = 0x26 => "E_DATA_CONNECTION",
        /// E_KNX_CONNECTION: error on the KNX subnetwork connection.
        KnxConnection = 0x27 => "E_KNX_CONNECTION",
        /// E_AUTHORISATION_ERROR.
        AuthorisationError = 0x28 => "E_AUTHORISATION_ERROR",
        /// E_TUNNELLING_LAYER: the requested KNX layer is not supported.
        TunnellingLayer = 0x29 => "E_TUNNELLING_LAYER",
        /// E_NO_TUNNELLING_ADDRESS: the requested individual address is not available.
        NoTunnellingAddress = 0x2D => "E_NO_TUNNELLING_ADDRESS",
        /// E_CONNECTION_IN_USE: the requested individual address is in use.
        ConnectionInUse = 0x2E => "E_CONNECTION_IN_USE",
    }
}

code_enum! {
    /// HPAI host protocol code.
    pub enum HostProtocol: u8 {
        /// IPV4_UDP.
        Udp = 0x01 => "UDP",
        /// IPV4_TCP.
        Tcp = 0x02 => "TCP",
    }
}

code_enum! {
    /// CRI/CRD connection type code.
    pub enum ConnectionType: u8 {
        /// DEVICE_MGMT_CONNECTION.
        DeviceManagement = 0x03 => "device management",
        /// TUNNEL_CONNECTION.
        Tunnel = 0x04 => "tunnel",
        /// REMLOG_CONNECTION.
        RemoteLogging = 0x06 => "remote logging",
        /// REMCONF_CONNECTION.
        RemoteConfiguration = 0x07 => "remote configuration",
        /// OBJSVR_CONNECTION.
        ObjectServer = 0x08 => "object server",
    }
}

code_enum! {
    /// KNX layer requested by a tunnel CRI.
    pub enum TunnelLayer: u8 {
        /// TUNNEL_LINKLAYER: cEMI L_Data frames.
        LinkLayer = 0x02 => "link layer",
        /// TUNNEL_RAW: cEMI L_Raw frames.
        Raw = 0x04 => "raw",
        /// TUNNEL_BUSMONITOR: cEMI L_Busmon.ind frames.
        Busmonitor = 0x80 => "bus monitor",
    }
}

code_enum! {
    /// KNX medium code of the device information DIB.
    pub enum Medium: u8 {
        /// TP1.
        Tp1 = 0x02 => "TP1",
        /// PL110.
        Pl110 = 0x04 => "PL110",
        /// RF.
        Rf = 0x10 => "RF",
        /// KNX IP.
        Ip = 0x20 => "IP",
    }
}

code_enum! {
    /// Service family id in the supported-service-families DIB.
    pub enum ServiceFamilyId: u8 {
        /// KNXnet/IP Core.
        Core = 0x02 => "core",
        /// Device Management.
        DeviceManagement = 0x03 => "device management",
        /// Tunnelling.
        Tunnelling = 0x04 => "tunnelling",
        /// Routing.
        Routing = 0x05 => "routing",
        /// Remote Logging.
        RemoteLogging = 0x06 => "remote logging",
        /// Remote Configuration and Diagnosis.
        RemoteConfiguration = 0x07 => "remote configuration",
        /// Object Server.
        ObjectServer = 0x08 => "object server",
        /// Security.
        Security = 0x09 => "security",
    }
}

code_enum! {
    /// Description information block type code.
    pub enum DibType: u8 {
        /// DEVICE_INFO.
        DeviceInfo = 0x01 => "device info",
        /// SUPP_SVC_FAMILIES.
        SupportedServiceFamilies = 0x02 => "supported service families",
        /// IP_CONFIG.
        IpConfig = 0x03 => "IP config",
        /// IP_CUR_CONFIG.
        IpCurrentConfig = 0x04 => "IP current config",
        /// KNX_ADDRESSES.
        KnxAddresses = 0x05 => "KNX addresses",
        /// SECURED_SERVICE_FAMILIES.
        SecuredServiceFamilies = 0x06 => "secured service families",
        /// TUNNELLING_INFO.
        TunnellingInfo = 0x07 => "tunnelling info",
        /// EXTENDED_DEVICE_INFO.
        ExtendedDeviceInfo = 0x08 => "extended device info",
        /// MFR_DATA.
        ManufacturerData = 0xFE => "manufacturer data",
    }
}

/// Why a KNXnet/IP frame could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KnxIpError {
    /// The buffer ends before a field that must be present.
    #[error("KNXnet/IP frame truncated in {what}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
    },
    /// The header length byte is not 6.
    #[error("header length {0:#04x}, expected 0x06")]
    HeaderLength(u8),
    /// The protocol version is not 1.0.
    #[error("protocol version {0:#04x}, expected 0x10")]
    Version(u8),
    /// The total length field disagrees with the buffer.
    #[error("total length {declared} but the buffer has {actual} bytes")]
    TotalLength {
        /// The total length field.
        declared: u16,
        /// Bytes in the buffer.
        actual: usize,
    },
    /// A structure's length byte is wrong for its type.
    #[error("{what}: structure length {len} is invalid")]
    StructureLength {
        /// The structure.
        what: &'static str,
        /// Its length byte.
        len: u8,
    },
    /// A reserved byte is not zero.
    #[error("{what}: reserved byte is not zero")]
    Reserved {
        /// The structure.
        what: &'static str,
    },
    /// Bytes are left after the last structure of the service.
    #[error("{what}: trailing bytes")]
    Trailing {
        /// The service.
        what: &'static str,
    },
    /// A mandatory DIB is missing or out of order.
    #[error("missing {0} DIB")]
    MissingDib(&'static str),
    /// The cEMI payload is malformed.
    #[error("cEMI: {0}")]
    Cemi(#[from] CemiError),
    /// A representation field is out of range (emit only).
    #[error("field `{0}` out of range")]
    Field(&'static str),
    /// A [`KnxIpFrame::Unknown`] carries a service type this module parses; emit refuses it.
    #[error("service type {0:#06x} is known; use its variant")]
    KnownService(u16),
    /// The output buffer is too small (emit only).
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

type Result<T> = std::result::Result<T, KnxIpError>;

fn truncated(what: &'static str) -> KnxIpError {
    KnxIpError::Truncated { what }
}

/// A zero-copy view of a KNXnet/IP frame header and body.
///
/// [`KnxIpPacket::new_checked`] checks the header length, the protocol version and that the
/// buffer holds at least `total_length` bytes (bytes beyond it, e.g. the next frame of a
/// TCP stream, are ignored by [`KnxIpPacket::body`]).
#[derive(Debug, Clone)]
pub struct KnxIpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> KnxIpPacket<T> {
    /// Wraps a buffer without checking it (accessors never panic but may return zeros).
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header fields and the total length against the buffer.
    pub fn check_len(&self) -> Result<()> {
        let bytes = self.buffer.as_ref();
        let [header_len, version, _, _, l0, l1] = Reader::new(bytes)
            .array::<HEADER_LEN>()
            .ok_or(truncated("header"))?;
        if usize::from(header_len) != HEADER_LEN {
            return Err(KnxIpError::HeaderLength(header_len));
        }
        if version != PROTOCOL_VERSION {
            return Err(KnxIpError::Version(version));
        }
        let declared = u16::from_be_bytes([l0, l1]);
        if usize::from(declared) < HEADER_LEN || usize::from(declared) > bytes.len() {
            return Err(KnxIpError::TotalLength {
                declared,
                actual: bytes.len(),
            });
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, index: usize) -> u16 {
        let bytes = self.buffer.as_ref();
        let b = |i: usize| bytes.get(i).copied().unwrap_or(0);
        u16::from_be_bytes([b(index), b(index + 1)])
    }

    /// The service type.
    pub fn service_type(&self) -> ServiceType {
        ServiceType::from(self.u16_at(2))
    }

    /// The total length field (header included).
    pub fn total_length(&self) -> u16 {
        self.u16_at(4)
    }

    /// The body: the bytes after the header up to the total length.
    pub fn body(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..usize::from(self.total_length()))
            .unwrap_or(&[])
    }
}

/// For stream transports (KNXnet/IP over TCP): the length of the frame at the start of
/// `bytes`, or `None` while fewer than [`HEADER_LEN`] bytes are available. Fails on a bad
/// header.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>> {
    let Some([header_len, version, _, _, l0, l1]) = Reader::new(bytes).array::<HEADER_LEN>() else {
        return Ok(None);
    };
    if usize::from(header_len) != HEADER_LEN {
        return Err(KnxIpError::HeaderLength(header_len));
    }
    if version != PROTOCOL_VERSION {
        return Err(KnxIpError::Version(version));
    }
    let declared = u16::from_be_bytes([l0, l1]);
    if usize::from(declared) < HEADER_LEN {
        return Err(KnxIpError::TotalLength {
            declared,
            actual: bytes.len(),
        });
    }
    Ok(Some(usize::from(declared)))
}
