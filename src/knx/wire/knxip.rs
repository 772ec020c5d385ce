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

use std::fmt;
use std::net::Ipv4Addr;

use super::cemi::{Cemi, CemiError};
use super::{Reader, Writer, fmt_hex};
use crate::knx::address::IndividualAddress;

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

/// Host protocol address information: protocol, IPv4 address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hpai {
    /// UDP or TCP.
    pub protocol: HostProtocol,
    /// IPv4 address (0.0.0.0 = "use the sender's address", NAT mode).
    pub address: Ipv4Addr,
    /// Port (0 in NAT mode).
    pub port: u16,
}

impl Hpai {
    /// Length of an HPAI.
    pub const LEN: usize = 8;

    /// The "route back" HPAI 0.0.0.0:0 used behind NAT and with TCP.
    pub const fn unspecified(protocol: HostProtocol) -> Self {
        Self {
            protocol,
            address: Ipv4Addr::UNSPECIFIED,
            port: 0,
        }
    }

    /// A UDP endpoint.
    pub const fn udp(address: Ipv4Addr, port: u16) -> Self {
        Self {
            protocol: HostProtocol::Udp,
            address,
            port,
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (len, protocol) = r.u8().zip(r.u8()).ok_or(truncated("HPAI"))?;
        if usize::from(len) != Self::LEN {
            return Err(KnxIpError::StructureLength { what: "HPAI", len });
        }
        let (address, port) = r.array::<4>().zip(r.u16()).ok_or(truncated("HPAI"))?;
        Ok(Self {
            protocol: HostProtocol::from(protocol),
            address: Ipv4Addr::from(address),
            port,
        })
    }

    fn write(self, w: &mut Writer<'_>) -> Option<()> {
        w.u8(8)?;
        w.u8(u8::from(self.protocol))?;
        w.bytes(&self.address.octets())?;
        w.u16(self.port)
    }
}

impl fmt::Display for Hpai {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.address, self.port, self.protocol)
    }
}

/// Connection request information (the last part of CONNECT_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cri {
    /// A tunnel: `04 04 layer 00`, or the extended form `06 04 layer 00 hh ll` that asks for
    /// a specific individual address (tunnelling v2).
    Tunnel {
        /// The KNX layer.
        layer: TunnelLayer,
        /// The requested individual address (extended CRI only).
        individual_address: Option<IndividualAddress>,
    },
    /// A device-management connection: `02 03`.
    DeviceManagement,
    /// Any other connection type, with its data after the type byte.
    Other {
        /// The connection type (neither tunnel nor device management).
        connection_type: ConnectionType,
        /// Bytes after the type.
        data: Vec<u8>,
    },
}

/// Reads a `len type data…` structure; returns (type, data).
fn parse_struct<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<(u8, &'a [u8])> {
    let len = r.u8().ok_or(truncated(what))?;
    if len < 2 {
        return Err(KnxIpError::StructureLength { what, len });
    }
    let ty = r.u8().ok_or(truncated(what))?;
    let data = r.take(usize::from(len) - 2).ok_or(truncated(what))?;
    Ok((ty, data))
}

fn write_struct(w: &mut Writer<'_>, ty: u8, data: &[u8]) -> Option<()> {
    w.u8(u8::try_from(data.len() + 2).ok()?)?;
    w.u8(ty)?;
    w.bytes(data)
}

impl Cri {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, data) = parse_struct(r, "CRI")?;
        let len = u8::try_from(data.len() + 2).unwrap_or(u8::MAX);
        match ConnectionType::from(ty) {
            ConnectionType::Tunnel => {
                let (layer, reserved, ia) = match data {
                    [layer, reserved] => (*layer, *reserved, None),
                    [layer, reserved, hi, lo] => (
                        *layer,
                        *reserved,
                        Some(IndividualAddress::from_raw(u16::from_be_bytes([*hi, *lo]))),
                    ),
                    _ => return Err(KnxIpError::StructureLength { what: "CRI", len }),
                };
                if reserved != 0 {
                    return Err(KnxIpError::Reserved { what: "CRI" });
                }
                Ok(Self::Tunnel {
                    layer: TunnelLayer::from(layer),
                    individual_address: ia,
                })
            }
            ConnectionType::DeviceManagement => {
                if data.is_empty() {
                    Ok(Self::DeviceManagement)
                } else {
                    Err(KnxIpError::StructureLength { what: "CRI", len })
                }
            }
            connection_type => Ok(Self::Other {
                connection_type,
                data: data.to_vec(),
            }),
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Tunnel {
                individual_address, ..
            } => {
                if individual_address.is_some() {
                    6
                } else {
                    4
                }
            }
            Self::DeviceManagement => 2,
            Self::Other { data, .. } => 2 + data.len(),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Other {
                connection_type: ConnectionType::Tunnel | ConnectionType::DeviceManagement,
                ..
            } => Err(KnxIpError::Field("CRI connection type")),
            Self::Other { data, .. } if data.len() > 253 => Err(KnxIpError::Field("CRI data")),
            _ => Ok(()),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        match self {
            Self::Tunnel {
                layer,
                individual_address,
            } => {
                let layer = u8::from(*layer);
                match individual_address {
                    None => write_struct(w, 0x04, &[layer, 0]),
                    Some(ia) => {
                        let [hi, lo] = ia.raw().to_be_bytes();
                        write_struct(w, 0x04, &[layer, 0, hi, lo])
                    }
                }
            }
            Self::DeviceManagement => write_struct(w, 0x03, &[]),
            Self::Other {
                connection_type,
                data,
            } => write_struct(w, u8::from(*connection_type), data),
        }
    }
}

impl fmt::Display for Cri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tunnel {
                layer,
                individual_address,
            } => {
                write!(f, "tunnel {layer}")?;
                if let Some(ia) = individual_address {
                    write!(f, " as {ia}")?;
                }
                Ok(())
            }
            Self::DeviceManagement => f.write_str("device management"),
            Self::Other {
                connection_type, ..
            } => write!(f, "{connection_type}"),
        }
    }
}

/// Connection response data block (the last part of a successful CONNECT_RESPONSE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Crd {
    /// A tunnel: `04 04 hh ll` with the individual address assigned to the tunnel.
    Tunnel {
        /// The tunnel's individual address.
        individual_address: IndividualAddress,
    },
    /// A device-management connection: `02 03`.
    DeviceManagement,
    /// Any other connection type, with its data after the type byte.
    Other {
        /// The connection type (neither tunnel nor device management).
        connection_type: ConnectionType,
        /// Bytes after the type.
        data: Vec<u8>,
    },
}

impl Crd {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, data) = parse_struct(r, "CRD")?;
        let len = u8::try_from(data.len() + 2).unwrap_or(u8::MAX);
        match ConnectionType::from(ty) {
            ConnectionType::Tunnel => match data {
                [hi, lo] => Ok(Self::Tunnel {
                    individual_address: IndividualAddress::from_raw(u16::from_be_bytes([*hi, *lo])),
                }),
                _ => Err(KnxIpError::StructureLength { what: "CRD", len }),
            },
            ConnectionType::DeviceManagement => {
                if data.is_empty() {
                    Ok(Self::DeviceManagement)
                } else {
                    Err(KnxIpError::StructureLength { what: "CRD", len })
                }
            }
            connection_type => Ok(Self::Other {
                connection_type,
                data: data.to_vec(),
            }),
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Tunnel { .. } => 4,
            Self::DeviceManagement => 2,
            Self::Other { data, .. } => 2 + data.len(),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Other {
                connection_type: ConnectionType::Tunnel | ConnectionType::DeviceManagement,
                ..
            } => Err(KnxIpError::Field("CRD connection type")),
            Self::Other { data, .. } if data.len() > 253 => Err(KnxIpError::Field("CRD data")),
            _ => Ok(()),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        match self {
            Self::Tunnel { individual_address } => {
                write_struct(w, 0x04, &individual_address.raw().to_be_bytes())
            }
            Self::DeviceManagement => write_struct(w, 0x03, &[]),
            Self::Other {
                connection_type,
                data,
            } => write_struct(w, u8::from(*connection_type), data),
        }
    }
}

/// Length of a friendly name in the device information DIB.
pub const FRIENDLY_NAME_LEN: usize = 30;

/// The device information DIB (type 0x01, 54 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceInfo {
    /// KNX medium.
    pub medium: Medium,
    /// Device status; bit 0 = programming mode (other bits kept as received).
    pub device_status: u8,
    /// The device's individual address.
    pub individual_address: IndividualAddress,
    /// Project-installation identifier.
    pub project_installation_id: u16,
    /// KNX serial number.
    pub serial_number: [u8; 6],
    /// Routing multicast address (0.0.0.0 if the device does not route).
    pub multicast_address: Ipv4Addr,
    /// MAC address.
    pub mac_address: [u8; 6],
    /// Friendly name, ISO 8859-1, zero padded (kept raw; see [`DeviceInfo::name`]).
    pub friendly_name: [u8; FRIENDLY_NAME_LEN],
}

impl DeviceInfo {
    /// Length of the DIB.
    pub const LEN: u8 = 54;

    /// True when the device is in programming mode.
    pub const fn programming_mode(&self) -> bool {
        self.device_status & 0x01 != 0
    }

    /// The friendly name decoded from ISO 8859-1, up to the first NUL.
    pub fn name(&self) -> String {
        self.friendly_name
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect()
    }

    /// Encodes a friendly name: at most 30 ISO 8859-1 characters, no NUL, zero padded.
    pub fn encode_name(name: &str) -> Result<[u8; FRIENDLY_NAME_LEN]> {
        let mut out = [0u8; FRIENDLY_NAME_LEN];
        let mut slots = out.iter_mut();
        for c in name.chars() {
            let byte = u8::try_from(u32::from(c))
                .ok()
                .filter(|b| *b != 0)
                .ok_or(KnxIpError::Field("friendly_name"))?;
            let slot = slots.next().ok_or(KnxIpError::Field("friendly_name"))?;
            *slot = byte;
        }
        Ok(out)
    }

    fn parse_data(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let err = KnxIpError::StructureLength {
            what: "device info DIB",
            len: u8::try_from(data.len() + 2).unwrap_or(u8::MAX),
        };
        let (medium, device_status) = r.u8().zip(r.u8()).ok_or(err)?;
        let (ia, project) = r.u16().zip(r.u16()).ok_or(err)?;
        let serial_number = r.array::<6>().ok_or(err)?;
        let multicast = r.array::<4>().ok_or(err)?;
        let mac_address = r.array::<6>().ok_or(err)?;
        let friendly_name = r.array::<FRIENDLY_NAME_LEN>().ok_or(err)?;
        if !r.rest().is_empty() {
            return Err(err);
        }
        Ok(Self {
            medium: Medium::from(medium),
            device_status,
            individual_address: IndividualAddress::from_raw(ia),
            project_installation_id: project,
            serial_number,
            multicast_address: Ipv4Addr::from(multicast),
            mac_address,
            friendly_name,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        w.u8(Self::LEN)?;
        w.u8(u8::from(DibType::DeviceInfo))?;
        w.u8(u8::from(self.medium))?;
        w.u8(self.device_status)?;
        w.u16(self.individual_address.raw())?;
        w.u16(self.project_installation_id)?;
        w.bytes(&self.serial_number)?;
        w.bytes(&self.multicast_address.octets())?;
        w.bytes(&self.mac_address)?;
        w.bytes(&self.friendly_name)
    }
}

/// One entry of the supported-service-families DIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceFamily {
    /// The family.
    pub family: ServiceFamilyId,
    /// Its version.
    pub version: u8,
}

/// A DIB this module does not decode, kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawDib {
    /// The DIB type.
    pub dib_type: DibType,
    /// The bytes after the type (at most 253).
    pub data: Vec<u8>,
}

/// The DIBs of a SEARCH_RESPONSE or DESCRIPTION_RESPONSE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceDescription {
    /// The device information DIB (always first).
    pub device_info: DeviceInfo,
    /// The supported service families DIB (always second).
    pub service_families: Vec<ServiceFamily>,
    /// Further DIBs, in order, raw.
    pub other_dibs: Vec<RawDib>,
}

impl DeviceDescription {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, data) = parse_struct(r, "DIB")?;
        if DibType::from(ty) != DibType::DeviceInfo {
            return Err(KnxIpError::MissingDib("device info"));
        }
        let device_info = DeviceInfo::parse_data(data)?;
        let (ty, data) = parse_struct(r, "DIB")?;
        if DibType::from(ty) != DibType::SupportedServiceFamilies {
            return Err(KnxIpError::MissingDib("supported service families"));
        }
        let pairs = data.chunks_exact(2);
        if !pairs.remainder().is_empty() {
            return Err(KnxIpError::StructureLength {
                what: "service families DIB",
                len: u8::try_from(data.len() + 2).unwrap_or(u8::MAX),
            });
        }
        let service_families = pairs
            .filter_map(|pair| match pair {
                [family, version] => Some(ServiceFamily {
                    family: ServiceFamilyId::from(*family),
                    version: *version,
                }),
                _ => None,
            })
            .collect();
        let mut other_dibs = Vec::new();
        while !r.is_empty() {
            let (ty, data) = parse_struct(r, "DIB")?;
            other_dibs.push(RawDib {
                dib_type: DibType::from(ty),
                data: data.to_vec(),
            });
        }
        Ok(Self {
            device_info,
            service_families,
            other_dibs,
        })
    }

    fn buffer_len(&self) -> usize {
        usize::from(DeviceInfo::LEN)
            + 2
            + 2 * self.service_families.len()
            + self
                .other_dibs
                .iter()
                .map(|d| 2 + d.data.len())
                .sum::<usize>()
    }

    fn validate(&self) -> Result<()> {
        if self.service_families.len() > 126 {
            return Err(KnxIpError::Field("service_families"));
        }
        for dib in &self.other_dibs {
            if dib.data.len() > 253 {
                return Err(KnxIpError::Field("other_dibs"));
            }
        }
        Ok(())
    }

    fn write(&self, w: &mut Writer<'_>) -> Option<()> {
        self.device_info.write(w)?;
        w.u8(u8::try_from(2 + 2 * self.service_families.len()).ok()?)?;
        w.u8(u8::from(DibType::SupportedServiceFamilies))?;
        for sf in &self.service_families {
            w.u8(u8::from(sf.family))?;
            w.u8(sf.version)?;
        }
        for dib in &self.other_dibs {
            write_struct(w, u8::from(dib.dib_type), &dib.data)?;
        }
        Some(())
    }
}

/// A KNXnet/IP frame (header and body).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnxIpFrame {
    /// SEARCH_REQUEST (0x0201): discovery endpoint.
    SearchRequest {
        /// Where to send the responses.
        discovery_endpoint: Hpai,
    },
    /// SEARCH_RESPONSE (0x0202): control endpoint and DIBs.
    SearchResponse {
        /// The responding server's control endpoint.
        control_endpoint: Hpai,
        /// Device information and service families.
        description: DeviceDescription,
    },
    /// DESCRIPTION_REQUEST (0x0203): control endpoint of the client.
    DescriptionRequest {
        /// Where to send the response.
        control_endpoint: Hpai,
    },
    /// DESCRIPTION_RESPONSE (0x0204): DIBs.
    DescriptionResponse(DeviceDescription),
    /// CONNECT_REQUEST (0x0205).
    ConnectRequest {
        /// The client's control endpoint.
        control_endpoint: Hpai,
        /// The client's data endpoint.
        data_endpoint: Hpai,
        /// What kind of connection.
        cri: Cri,
    },
    /// CONNECT_RESPONSE (0x0206): channel id, status and, on success, the server's data
    /// endpoint and CRD.
    ConnectResponse {
        /// The communication channel id (0 on error).
        channel_id: u8,
        /// The status.
        status: Status,
        /// Data endpoint and CRD; absent in error responses that omit them.
        endpoint: Option<(Hpai, Crd)>,
    },
    /// CONNECTIONSTATE_REQUEST (0x0207): heartbeat.
    ConnectionStateRequest {
        /// The channel id.
        channel_id: u8,
        /// The client's control endpoint.
        control_endpoint: Hpai,
    },
    /// CONNECTIONSTATE_RESPONSE (0x0208).
    ConnectionStateResponse {
        /// The channel id.
        channel_id: u8,
        /// The status.
        status: Status,
    },
    /// DISCONNECT_REQUEST (0x0209).
    DisconnectRequest {
        /// The channel id.
        channel_id: u8,
        /// The sender's control endpoint.
        control_endpoint: Hpai,
    },
    /// DISCONNECT_RESPONSE (0x020A).
    DisconnectResponse {
        /// The channel id.
        channel_id: u8,
        /// The status.
        status: Status,
    },
    /// TUNNELLING_REQUEST (0x0420): connection header and a cEMI frame.
    TunnellingRequest {
        /// The channel id.
        channel_id: u8,
        /// The sequence counter.
        sequence: u8,
        /// The cEMI frame.
        cemi: Cemi,
    },
    /// TUNNELLING_ACK (0x0421).
    TunnellingAck {
        /// The channel id.
        channel_id: u8,
        /// The sequence counter being acknowledged.
        sequence: u8,
        /// The status.
        status: Status,
    },
    /// DEVICE_CONFIGURATION_REQUEST (0x0310): connection header and a cEMI (M_*) frame.
    DeviceConfigurationRequest {
        /// The channel id.
        channel_id: u8,
        /// The sequence counter.
        sequence: u8,
        /// The cEMI frame.
        cemi: Cemi,
    },
    /// DEVICE_CONFIGURATION_ACK (0x0311).
    DeviceConfigurationAck {
        /// The channel id.
        channel_id: u8,
        /// The sequence counter being acknowledged.
        sequence: u8,
        /// The status.
        status: Status,
    },
    /// ROUTING_INDICATION (0x0530): a cEMI frame.
    RoutingIndication(Cemi),
    /// ROUTING_LOST_MESSAGE (0x0531): `04 state nn nn`.
    RoutingLostMessage {
        /// Device state (bit 0 KNX fault, bit 1 IP fault).
        device_state: u8,
        /// Number of lost messages.
        lost_messages: u16,
    },
    /// ROUTING_BUSY (0x0532): `06 state tt tt cc cc`.
    RoutingBusy {
        /// Device state.
        device_state: u8,
        /// Wait time in milliseconds.
        wait_time_ms: u16,
        /// Routing busy control field.
        control: u16,
    },
    /// Any other service, body kept raw.
    Unknown {
        /// The service type (not one decoded by this module).
        service_type: u16,
        /// The body after the header.
        body: Vec<u8>,
    },
}

fn connection_header(r: &mut Reader<'_>) -> Result<(u8, u8, u8)> {
    let [len, channel, sequence, last] = r.array::<4>().ok_or(truncated("connection header"))?;
    if len != 4 {
        return Err(KnxIpError::StructureLength {
            what: "connection header",
            len,
        });
    }
    Ok((channel, sequence, last))
}

fn channel_and_reserved(r: &mut Reader<'_>, what: &'static str) -> Result<u8> {
    let (channel, reserved) = r.u8().zip(r.u8()).ok_or(truncated(what))?;
    if reserved != 0 {
        return Err(KnxIpError::Reserved { what });
    }
    Ok(channel)
}

fn channel_and_status(r: &mut Reader<'_>, what: &'static str) -> Result<(u8, Status)> {
    let (channel, status) = r.u8().zip(r.u8()).ok_or(truncated(what))?;
    Ok((channel, Status::from(status)))
}

impl KnxIpFrame {
    /// Parses one frame; the buffer must hold exactly `total_length` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let packet = KnxIpPacket::new_checked(bytes)?;
        let declared = packet.total_length();
        if usize::from(declared) != bytes.len() {
            return Err(KnxIpError::TotalLength {
                declared,
                actual: bytes.len(),
            });
        }
        Self::parse_packet(&packet)
    }

    /// Decodes the frame of a checked view (bytes beyond the total length are ignored).
    pub fn parse_packet(packet: &KnxIpPacket<&[u8]>) -> Result<Self> {
        let service = packet.service_type();
        let body = packet.body();
        let mut r = Reader::new(body);
        let r = &mut r;
        let frame = match service {
            ServiceType::SearchRequest => Self::SearchRequest {
                discovery_endpoint: Hpai::parse(r)?,
            },
            ServiceType::SearchResponse => Self::SearchResponse {
                control_endpoint: Hpai::parse(r)?,
                description: DeviceDescription::parse(r)?,
            },
            ServiceType::DescriptionRequest => Self::DescriptionRequest {
                control_endpoint: Hpai::parse(r)?,
            },
            ServiceType::DescriptionResponse => {
                Self::DescriptionResponse(DeviceDescription::parse(r)?)
            }
            ServiceType::ConnectRequest => Self::ConnectRequest {
                control_endpoint: Hpai::parse(r)?,
                data_endpoint: Hpai::parse(r)?,
                cri: Cri::parse(r)?,
            },
            ServiceType::ConnectResponse => {
                let (channel_id, status) = channel_and_status(r, "CONNECT_RESPONSE")?;
                let endpoint = if r.is_empty() {
                    None
                } else {
                    Some((Hpai::parse(r)?, Crd::parse(r)?))
                };
                Self::ConnectResponse {
                    channel_id,
                    status,
                    endpoint,
                }
            }
            ServiceType::ConnectionStateRequest => Self::ConnectionStateRequest {
                channel_id: channel_and_reserved(r, "CONNECTIONSTATE_REQUEST")?,
                control_endpoint: Hpai::parse(r)?,
            },
            ServiceType::ConnectionStateResponse => {
                let (channel_id, status) = channel_and_status(r, "CONNECTIONSTATE_RESPONSE")?;
                Self::ConnectionStateResponse { channel_id, status }
            }
            ServiceType::DisconnectRequest => Self::DisconnectRequest {
                channel_id: channel_and_reserved(r, "DISCONNECT_REQUEST")?,
                control_endpoint: Hpai::parse(r)?,
            },
            ServiceType::DisconnectResponse => {
                let (channel_id, status) = channel_and_status(r, "DISCONNECT_RESPONSE")?;
                Self::DisconnectResponse { channel_id, status }
            }
            ServiceType::TunnellingRequest | ServiceType::DeviceConfigurationRequest => {
                let (channel_id, sequence, reserved) = connection_header(r)?;
                if reserved != 0 {
                    return Err(KnxIpError::Reserved {
                        what: "connection header",
                    });
                }
                let cemi = Cemi::parse(r.rest())?;
                if service == ServiceType::TunnellingRequest {
                    Self::TunnellingRequest {
                        channel_id,
                        sequence,
                        cemi,
                    }
                } else {
                    Self::DeviceConfigurationRequest {
                        channel_id,
                        sequence,
                        cemi,
                    }
                }
            }
            ServiceType::TunnellingAck | ServiceType::DeviceConfigurationAck => {
                let (channel_id, sequence, status) = connection_header(r)?;
                let status = Status::from(status);
                if service == ServiceType::TunnellingAck {
                    Self::TunnellingAck {
                        channel_id,
                        sequence,
                        status,
                    }
                } else {
                    Self::DeviceConfigurationAck {
                        channel_id,
                        sequence,
                        status,
                    }
                }
            }
            ServiceType::RoutingIndication => Self::RoutingIndication(Cemi::parse(r.rest())?),
            ServiceType::RoutingLostMessage => {
                let [len, device_state, n0, n1] =
                    r.array::<4>().ok_or(truncated("ROUTING_LOST_MESSAGE"))?;
                if len != 4 {
                    return Err(KnxIpError::StructureLength {
                        what: "ROUTING_LOST_MESSAGE",
                        len,
                    });
                }
                Self::RoutingLostMessage {
                    device_state,
                    lost_messages: u16::from_be_bytes([n0, n1]),
                }
            }
            ServiceType::RoutingBusy => {
                let [len, device_state, t0, t1, c0, c1] =
                    r.array::<6>().ok_or(truncated("ROUTING_BUSY"))?;
                if len != 6 {
                    return Err(KnxIpError::StructureLength {
                        what: "ROUTING_BUSY",
                        len,
                    });
                }
                Self::RoutingBusy {
                    device_state,
                    wait_time_ms: u16::from_be_bytes([t0, t1]),
                    control: u16::from_be_bytes([c0, c1]),
                }
            }
            other => Self::Unknown {
                service_type: u16::from(other),
                body: r.rest().to_vec(),
            },
        };
        if !r.is_empty() {
            return Err(KnxIpError::Trailing {
                what: frame.service_name(),
            });
        }
        Ok(frame)
    }

    /// The service type of the frame.
    pub fn service_type(&self) -> ServiceType {
        match self {
            Self::SearchRequest { .. } => ServiceType::SearchRequest,
            Self::SearchResponse { .. } => ServiceType::SearchResponse,
            Self::DescriptionRequest { .. } => ServiceType::DescriptionRequest,
            Self::DescriptionResponse(_) => ServiceType::DescriptionResponse,
            Self::ConnectRequest { .. } => ServiceType::ConnectRequest,
            Self::ConnectResponse { .. } => ServiceType::ConnectResponse,
            Self::ConnectionStateRequest { .. } => ServiceType::ConnectionStateRequest,
            Self::ConnectionStateResponse { .. } => ServiceType::ConnectionStateResponse,
            Self::DisconnectRequest { .. } => ServiceType::DisconnectRequest,
            Self::DisconnectResponse { .. } => ServiceType::DisconnectResponse,
            Self::TunnellingRequest { .. } => ServiceType::TunnellingRequest,
            Self::TunnellingAck { .. } => ServiceType::TunnellingAck,
            Self::DeviceConfigurationRequest { .. } => ServiceType::DeviceConfigurationRequest,
            Self::DeviceConfigurationAck { .. } => ServiceType::DeviceConfigurationAck,
            Self::RoutingIndication(_) => ServiceType::RoutingIndication,
            Self::RoutingLostMessage { .. } => ServiceType::RoutingLostMessage,
            Self::RoutingBusy { .. } => ServiceType::RoutingBusy,
            Self::Unknown { service_type, .. } => ServiceType::from(*service_type),
        }
    }

    fn service_name(&self) -> &'static str {
        match self.service_type() {
            ServiceType::SearchRequest => "SEARCH_REQUEST",
            ServiceType::SearchResponse => "SEARCH_RESPONSE",
            ServiceType::DescriptionRequest => "DESCRIPTION_REQUEST",
            ServiceType::DescriptionResponse => "DESCRIPTION_RESPONSE",
            ServiceType::ConnectRequest => "CONNECT_REQUEST",
            ServiceType::ConnectResponse => "CONNECT_RESPONSE",
            ServiceType::ConnectionStateRequest => "CONNECTIONSTATE_REQUEST",
            ServiceType::ConnectionStateResponse => "CONNECTIONSTATE_RESPONSE",
            ServiceType::DisconnectRequest => "DISCONNECT_REQUEST",
            ServiceType::DisconnectResponse => "DISCONNECT_RESPONSE",
            ServiceType::TunnellingRequest => "TUNNELLING_REQUEST",
            ServiceType::TunnellingAck => "TUNNELLING_ACK",
            ServiceType::DeviceConfigurationRequest => "DEVICE_CONFIGURATION_REQUEST",
            ServiceType::DeviceConfigurationAck => "DEVICE_CONFIGURATION_ACK",
            ServiceType::RoutingIndication => "ROUTING_INDICATION",
            ServiceType::RoutingLostMessage => "ROUTING_LOST_MESSAGE",
            ServiceType::RoutingBusy => "ROUTING_BUSY",
            _ => "KNXnet/IP service",
        }
    }

    /// True when [`KnxIpFrame::parse`] decodes `service_type` into a dedicated variant.
    pub fn is_known_service(service_type: u16) -> bool {
        matches!(
            ServiceType::from(service_type),
            ServiceType::SearchRequest
                | ServiceType::SearchResponse
                | ServiceType::DescriptionRequest
                | ServiceType::DescriptionResponse
                | ServiceType::ConnectRequest
                | ServiceType::ConnectResponse
                | ServiceType::ConnectionStateRequest
                | ServiceType::ConnectionStateResponse
                | ServiceType::DisconnectRequest
                | ServiceType::DisconnectResponse
                | ServiceType::TunnellingRequest
                | ServiceType::TunnellingAck
                | ServiceType::DeviceConfigurationRequest
                | ServiceType::DeviceConfigurationAck
                | ServiceType::RoutingIndication
                | ServiceType::RoutingLostMessage
                | ServiceType::RoutingBusy
        )
    }

    /// Number of bytes [`KnxIpFrame::emit`] writes (header included).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Self::SearchRequest { .. } | Self::DescriptionRequest { .. } => Hpai::LEN,
                Self::SearchResponse { description, .. } => Hpai::LEN + description.buffer_len(),
                Self::DescriptionResponse(description) => description.buffer_len(),
                Self::ConnectRequest { cri, .. } => 2 * Hpai::LEN + cri.buffer_len(),
                Self::ConnectResponse { endpoint, .. } => {
                    2 + endpoint
                        .as_ref()
                        .map_or(0, |(_, crd)| Hpai::LEN + crd.buffer_len())
                }
                Self::ConnectionStateRequest { .. } | Self::DisconnectRequest { .. } => {
                    2 + Hpai::LEN
                }
                Self::ConnectionStateResponse { .. } | Self::DisconnectResponse { .. } => 2,
                Self::TunnellingRequest { cemi, .. }
                | Self::DeviceConfigurationRequest { cemi, .. } => 4 + cemi.buffer_len(),
                Self::TunnellingAck { .. }
                | Self::DeviceConfigurationAck { .. }
                | Self::RoutingLostMessage { .. } => 4,
                Self::RoutingIndication(cemi) => cemi.buffer_len(),
                Self::RoutingBusy { .. } => 6,
                Self::Unknown { body, .. } => body.len(),
            }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::SearchResponse { description, .. } | Self::DescriptionResponse(description) => {
                description.validate()
            }
            Self::ConnectRequest { cri, .. } => cri.validate(),
            Self::ConnectResponse {
                endpoint: Some((_, crd)),
                ..
            } => crd.validate(),
            Self::Unknown { service_type, .. } if Self::is_known_service(*service_type) => {
                Err(KnxIpError::KnownService(*service_type))
            }
            _ => Ok(()),
        }
    }

    /// Writes the frame into `buf` and returns the number of bytes written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        self.validate()?;
        let needed = self.buffer_len();
        let total = u16::try_from(needed).map_err(|_| KnxIpError::Field("total length"))?;
        let too_small = KnxIpError::BufferTooSmall {
            needed,
            available: buf.len(),
        };
        let mut w = Writer::new(buf);
        w.u8(6)
            .and_then(|()| w.u8(PROTOCOL_VERSION))
            .and_then(|()| w.u16(u16::from(self.service_type())))
            .and_then(|()| w.u16(total))
            .ok_or(too_small)?;
        let cemi_into = |w: &mut Writer<'_>, cemi: &Cemi| -> Result<()> {
            let target = w.reserve(cemi.buffer_len()).ok_or(too_small)?;
            cemi.emit(target)?;
            Ok(())
        };
        match self {
            Self::TunnellingRequest {
                channel_id,
                sequence,
                cemi,
            }
            | Self::DeviceConfigurationRequest {
                channel_id,
                sequence,
                cemi,
            } => {
                w.bytes(&[4, *channel_id, *sequence, 0]).ok_or(too_small)?;
                cemi_into(&mut w, cemi)?;
            }
            Self::RoutingIndication(cemi) => cemi_into(&mut w, cemi)?,
            _ => self.write_body(&mut w).ok_or(too_small)?,
        }
        Ok(w.position())
    }

    fn write_body(&self, w: &mut Writer<'_>) -> Option<()> {
        match self {
            Self::SearchRequest {
                discovery_endpoint: hpai,
            }
            | Self::DescriptionRequest {
                control_endpoint: hpai,
            } => hpai.write(w),
            Self::SearchResponse {
                control_endpoint,
                description,
            } => {
                control_endpoint.write(w)?;
                description.write(w)
            }
            Self::DescriptionResponse(description) => description.write(w),
            Self::ConnectRequest {
                control_endpoint,
                data_endpoint,
                cri,
            } => {
                control_endpoint.write(w)?;
                data_endpoint.write(w)?;
                cri.write(w)
            }
            Self::ConnectResponse {
                channel_id,
                status,
                endpoint,
            } => {
                w.u8(*channel_id)?;
                w.u8(u8::from(*status))?;
                if let Some((hpai, crd)) = endpoint {
                    hpai.write(w)?;
                    crd.write(w)?;
                }
                Some(())
            }
            Self::ConnectionStateRequest {
                channel_id,
                control_endpoint,
            }
            | Self::DisconnectRequest {
                channel_id,
                control_endpoint,
            } => {
                w.u8(*channel_id)?;
                w.u8(0)?;
                control_endpoint.write(w)
            }
            Self::ConnectionStateResponse { channel_id, status }
            | Self::DisconnectResponse { channel_id, status } => {
                w.u8(*channel_id)?;
                w.u8(u8::from(*status))
            }
            Self::TunnellingAck {
                channel_id,
                sequence,
                status,
            }
            | Self::DeviceConfigurationAck {
                channel_id,
                sequence,
                status,
            } => w.bytes(&[4, *channel_id, *sequence, u8::from(*status)]),
            Self::RoutingLostMessage {
                device_state,
                lost_messages,
            } => {
                w.bytes(&[4, *device_state])?;
                w.u16(*lost_messages)
            }
            Self::RoutingBusy {
                device_state,
                wait_time_ms,
                control,
            } => {
                w.bytes(&[6, *device_state])?;
                w.u16(*wait_time_ms)?;
                w.u16(*control)
            }
            Self::Unknown { body, .. } => w.bytes(body),
            // Written by `emit` itself (they carry a cEMI frame).
            Self::TunnellingRequest { .. }
            | Self::DeviceConfigurationRequest { .. }
            | Self::RoutingIndication(_) => None,
        }
    }

    /// The emitted bytes as a vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0; self.buffer_len()];
        self.emit(&mut buf)?;
        Ok(buf)
    }
}

impl fmt::Display for KnxIpFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.service_type())?;
        match self {
            Self::SearchRequest {
                discovery_endpoint: hpai,
            }
            | Self::DescriptionRequest {
                control_endpoint: hpai,
            } => write!(f, " {hpai}"),
            Self::SearchResponse {
                control_endpoint,
                description,
            } => write!(
                f,
                " {control_endpoint} {} {:?}",
                description.device_info.individual_address,
                description.device_info.name()
            ),
            Self::DescriptionResponse(description) => write!(
                f,
                " {} {:?}",
                description.device_info.individual_address,
                description.device_info.name()
            ),
            Self::ConnectRequest {
                control_endpoint,
                data_endpoint,
                cri,
            } => write!(f, " {cri} ctrl {control_endpoint} data {data_endpoint}"),
            Self::ConnectResponse {
                channel_id,
                status,
                endpoint,
            } => {
                write!(f, " channel {channel_id} {status}")?;
                match endpoint {
                    Some((hpai, Crd::Tunnel { individual_address })) => {
                        write!(f, " data {hpai} as {individual_address}")
                    }
                    Some((hpai, _)) => write!(f, " data {hpai}"),
                    None => Ok(()),
                }
            }
            Self::ConnectionStateRequest { channel_id, .. }
            | Self::DisconnectRequest { channel_id, .. } => write!(f, " channel {channel_id}"),
            Self::ConnectionStateResponse { channel_id, status }
            | Self::DisconnectResponse { channel_id, status } => {
                write!(f, " channel {channel_id} {status}")
            }
            Self::TunnellingRequest {
                channel_id,
                sequence,
                cemi,
            }
            | Self::DeviceConfigurationRequest {
                channel_id,
                sequence,
                cemi,
            } => write!(f, " channel {channel_id} #{sequence}: {cemi}"),
            Self::TunnellingAck {
                channel_id,
                sequence,
                status,
            }
            | Self::DeviceConfigurationAck {
                channel_id,
                sequence,
                status,
            } => write!(f, " channel {channel_id} #{sequence} {status}"),
            Self::RoutingIndication(cemi) => write!(f, ": {cemi}"),
            Self::RoutingLostMessage {
                device_state,
                lost_messages,
            } => write!(f, " state {device_state:#04x} lost {lost_messages}"),
            Self::RoutingBusy {
                device_state,
                wait_time_ms,
                control,
            } => write!(
                f,
                " state {device_state:#04x} wait {wait_time_ms} ms control {control:#06x}"
            ),
            Self::Unknown { body, .. } => {
                f.write_str(" [")?;
                fmt_hex(f, body)?;
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knx::wire::cemi::tests::{GROUP_WRITE_IND, arb_cemi};
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn connect_request_tunnel_link_layer() {
        let bytes = hex(concat!(
            "06 10 02 05 00 1a ",       // header, CONNECT_REQUEST, total length 26
            "08 01 c0 a8 01 0a 0e 57 ", // control HPAI UDP 192.168.1.10:3671
            "08 01 c0 a8 01 0a 0e 58 ", // data HPAI UDP 192.168.1.10:3672
            "04 04 02 00",              // CRI: tunnel, link layer, reserved
        ));
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::ConnectRequest {
                control_endpoint: Hpai::udp(Ipv4Addr::new(192, 168, 1, 10), 3671),
                data_endpoint: Hpai::udp(Ipv4Addr::new(192, 168, 1, 10), 3672),
                cri: Cri::Tunnel {
                    layer: TunnelLayer::LinkLayer,
                    individual_address: None
                },
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        assert_eq!(
            frame.to_string(),
            "CONNECT_REQUEST tunnel link layer ctrl 192.168.1.10:3671/UDP data 192.168.1.10:3672/UDP"
        );
    }

    #[test]
    fn connect_request_tcp_extended_cri() {
        let bytes = hex(concat!(
            "06 10 02 05 00 1c ",       // total length 28
            "08 02 00 00 00 00 00 00 ", // TCP, route back
            "08 02 00 00 00 00 00 00 ",
            "06 04 02 00 11 0f", // extended CRI: tunnel, link layer, IA 1.1.15
        ));
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        let KnxIpFrame::ConnectRequest { cri, .. } = &frame else {
            panic!("wrong frame")
        };
        assert_eq!(
            cri,
            &Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address: Some(IndividualAddress::from_raw(0x110F))
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn connect_response_ok_and_error() {
        let bytes = hex(concat!(
            "06 10 02 06 00 14 ",       // CONNECT_RESPONSE, total length 20
            "15 00 ",                   // channel 21, E_NO_ERROR
            "08 01 c0 a8 01 14 0e 57 ", // data endpoint 192.168.1.20:3671
            "04 04 11 f0",              // CRD: tunnel, assigned IA 1.1.240
        ));
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::ConnectResponse {
                channel_id: 21,
                status: Status::NoError,
                endpoint: Some((
                    Hpai::udp(Ipv4Addr::new(192, 168, 1, 20), 3671),
                    Crd::Tunnel {
                        individual_address: IndividualAddress::from_raw(0x11F0)
                    }
                )),
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        // E_NO_MORE_CONNECTIONS without endpoint.
        let bytes = hex("06 10 02 06 00 08 00 24");
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::ConnectResponse {
                channel_id: 0,
                status: Status::NoMoreConnections,
                endpoint: None
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn heartbeat_and_disconnect() {
        let request = hex("06 10 02 07 00 10 15 00 08 01 c0 a8 01 0a 0e 57");
        assert_eq!(
            KnxIpFrame::parse(&request).unwrap(),
            KnxIpFrame::ConnectionStateRequest {
                channel_id: 21,
                control_endpoint: Hpai::udp(Ipv4Addr::new(192, 168, 1, 10), 3671)
            }
        );
        let response = hex("06 10 02 08 00 08 15 21");
        assert_eq!(
            KnxIpFrame::parse(&response).unwrap(),
            KnxIpFrame::ConnectionStateResponse {
                channel_id: 21,
                status: Status::ConnectionId
            }
        );
        let disconnect = hex("06 10 02 09 00 10 15 00 08 01 00 00 00 00 00 00");
        assert!(matches!(
            KnxIpFrame::parse(&disconnect),
            Ok(KnxIpFrame::DisconnectRequest { channel_id: 21, .. })
        ));
        let mut bad = disconnect.clone();
        bad[7] = 1; // reserved byte after the channel id
        assert_eq!(
            KnxIpFrame::parse(&bad),
            Err(KnxIpError::Reserved {
                what: "DISCONNECT_REQUEST"
            })
        );
        let disconnect_response = hex("06 10 02 0a 00 08 15 00");
        assert_eq!(
            KnxIpFrame::parse(&disconnect_response).unwrap(),
            KnxIpFrame::DisconnectResponse {
                channel_id: 21,
                status: Status::NoError
            }
        );
    }

    #[test]
    fn tunnelling_request_and_ack() {
        let mut bytes = hex("06 10 04 20 00 15 04 15 07 00"); // total 21, channel 21, seq 7
        bytes.extend(GROUP_WRITE_IND);
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        let KnxIpFrame::TunnellingRequest {
            channel_id: 21,
            sequence: 7,
            cemi,
        } = &frame
        else {
            panic!("wrong frame: {frame:?}")
        };
        assert_eq!(cemi, &Cemi::parse(&GROUP_WRITE_IND).unwrap());
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        assert_eq!(
            frame.to_string(),
            "TUNNELLING_REQUEST channel 21 #7: L_Data.ind 1.1.10 -> 1/2/3 low hops 6: \
             A_GroupValue_Write 0x01"
        );
        let ack = hex("06 10 04 21 00 0a 04 15 07 00");
        let frame = KnxIpFrame::parse(&ack).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::TunnellingAck {
                channel_id: 21,
                sequence: 7,
                status: Status::NoError
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), ack);
    }

    #[test]
    fn routing_frames() {
        let mut bytes = hex("06 10 05 30 00 11"); // total 17
        bytes.extend(GROUP_WRITE_IND);
        assert!(matches!(
            KnxIpFrame::parse(&bytes),
            Ok(KnxIpFrame::RoutingIndication(Cemi::LData(_)))
        ));
        let lost = hex("06 10 05 31 00 0a 04 00 00 05");
        assert_eq!(
            KnxIpFrame::parse(&lost).unwrap(),
            KnxIpFrame::RoutingLostMessage {
                device_state: 0,
                lost_messages: 5
            }
        );
        let busy = hex("06 10 05 32 00 0c 06 00 00 64 00 00");
        let frame = KnxIpFrame::parse(&busy).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::RoutingBusy {
                device_state: 0,
                wait_time_ms: 100,
                control: 0
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), busy);
    }

    fn sample_description() -> DeviceDescription {
        DeviceDescription {
            device_info: DeviceInfo {
                medium: Medium::Tp1,
                device_status: 0x01,
                individual_address: IndividualAddress::from_raw(0x1101),
                project_installation_id: 0,
                serial_number: [0x00, 0xFA, 0x01, 0x02, 0x03, 0x04],
                multicast_address: ROUTING_MULTICAST,
                mac_address: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
                friendly_name: DeviceInfo::encode_name("knx-echarge Süd").unwrap(),
            },
            service_families: vec![
                ServiceFamily {
                    family: ServiceFamilyId::Core,
                    version: 1,
                },
                ServiceFamily {
                    family: ServiceFamilyId::DeviceManagement,
                    version: 1,
                },
                ServiceFamily {
                    family: ServiceFamilyId::Tunnelling,
                    version: 1,
                },
            ],
            other_dibs: vec![],
        }
    }

    #[test]
    fn description_response_vector() {
        let mut bytes = hex(concat!(
            "06 10 02 04 00 44 ", // DESCRIPTION_RESPONSE, total 68 = 6 + 54 + 8
            "36 01 ",             // DIB length 54, device info
            "02 01 ",             // medium TP1, programming mode on
            "11 01 00 00 ",       // IA 1.1.1, project installation id 0
            "00 fa 01 02 03 04 ", // serial number
            "e0 00 17 0c ",       // multicast 224.0.23.12
            "02 00 00 00 00 01 ", // MAC
        ));
        let mut name = b"knx-echarge S\xFCd".to_vec();
        name.resize(30, 0);
        bytes.extend(name);
        bytes.extend(hex("08 02 02 01 03 01 04 01")); // core v1, device mgmt v1, tunnelling v1
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(frame, KnxIpFrame::DescriptionResponse(sample_description()));
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        let KnxIpFrame::DescriptionResponse(d) = frame else {
            unreachable!()
        };
        assert_eq!(d.device_info.name(), "knx-echarge Süd");
        assert!(d.device_info.programming_mode());
        // Search response = control HPAI + the same DIBs.
        let search = KnxIpFrame::SearchResponse {
            control_endpoint: Hpai::udp(Ipv4Addr::new(192, 168, 1, 20), 3671),
            description: d,
        };
        let encoded = search.to_bytes().unwrap();
        assert_eq!(encoded.len(), 6 + 8 + 54 + 8);
        assert_eq!(KnxIpFrame::parse(&encoded).unwrap(), search);
        assert!(DeviceInfo::encode_name(&"x".repeat(31)).is_err());
        assert!(DeviceInfo::encode_name("€").is_err());
    }

    #[test]
    fn search_request_vector() {
        let bytes = hex("06 10 02 01 00 0e 08 01 e0 00 17 0c 0e 57");
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::SearchRequest {
                discovery_endpoint: Hpai::udp(ROUTING_MULTICAST, DEFAULT_PORT)
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            KnxIpFrame::parse(&[0x06, 0x10, 0x02]),
            Err(KnxIpError::Truncated { what: "header" })
        );
        assert_eq!(
            KnxIpFrame::parse(&hex("05 10 02 01 00 06")),
            Err(KnxIpError::HeaderLength(5))
        );
        assert_eq!(
            KnxIpFrame::parse(&hex("06 20 02 01 00 06")),
            Err(KnxIpError::Version(0x20))
        );
        assert_eq!(
            KnxIpFrame::parse(&hex("06 10 02 08 00 09 15 00")),
            Err(KnxIpError::TotalLength {
                declared: 9,
                actual: 8
            })
        );
        assert_eq!(
            KnxIpFrame::parse(&hex("06 10 02 08 00 09 15 00 00")),
            Err(KnxIpError::Trailing {
                what: "CONNECTIONSTATE_RESPONSE"
            })
        );
        // Unknown services round-trip raw.
        let bytes = hex("06 10 09 50 00 08 aa bb");
        let frame = KnxIpFrame::parse(&bytes).unwrap();
        assert_eq!(
            frame,
            KnxIpFrame::Unknown {
                service_type: 0x0950,
                body: vec![0xAA, 0xBB]
            }
        );
        assert_eq!(frame.to_bytes().unwrap(), bytes);
        assert_eq!(
            KnxIpFrame::Unknown {
                service_type: 0x0420,
                body: vec![]
            }
            .to_bytes(),
            Err(KnxIpError::KnownService(0x0420))
        );
        // Stream framing.
        assert_eq!(frame_len(&[0x06, 0x10]), Ok(None));
        assert_eq!(frame_len(&bytes), Ok(Some(8)));
        let mut two = bytes.clone();
        two.extend(&bytes);
        let packet = KnxIpPacket::new_checked(&two[..]).unwrap();
        assert_eq!(packet.body(), [0xAA, 0xBB]);
        assert_eq!(packet.service_type(), ServiceType::SecureWrapper);
    }

    fn hpai() -> impl Strategy<Value = Hpai> {
        (any::<u8>(), any::<[u8; 4]>(), any::<u16>()).prop_map(|(p, a, port)| Hpai {
            protocol: HostProtocol::from(p),
            address: Ipv4Addr::from(a),
            port,
        })
    }

    fn status() -> impl Strategy<Value = Status> {
        any::<u8>().prop_map(Status::from)
    }

    fn cri() -> impl Strategy<Value = Cri> {
        prop_oneof![
            (any::<u8>(), any::<Option<u16>>()).prop_map(|(l, ia)| Cri::Tunnel {
                layer: TunnelLayer::from(l),
                individual_address: ia.map(IndividualAddress::from_raw),
            }),
            Just(Cri::DeviceManagement),
            (any::<u8>(), vec(any::<u8>(), 0..6))
                .prop_filter("other", |(t, _)| *t != 3 && *t != 4)
                .prop_map(|(t, data)| Cri::Other {
                    connection_type: ConnectionType::from(t),
                    data
                }),
        ]
    }

    fn crd() -> impl Strategy<Value = Crd> {
        prop_oneof![
            any::<u16>().prop_map(|ia| Crd::Tunnel {
                individual_address: IndividualAddress::from_raw(ia)
            }),
            Just(Crd::DeviceManagement),
            (any::<u8>(), vec(any::<u8>(), 0..6))
                .prop_filter("other", |(t, _)| *t != 3 && *t != 4)
                .prop_map(|(t, data)| Crd::Other {
                    connection_type: ConnectionType::from(t),
                    data
                }),
        ]
    }

    fn description() -> impl Strategy<Value = DeviceDescription> {
        (
            (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>()),
            (any::<[u8; 6]>(), any::<[u8; 4]>(), any::<[u8; 6]>()),
            vec(any::<u8>(), 30),
            vec((any::<u8>(), any::<u8>()), 0..5),
            vec((any::<u8>(), vec(any::<u8>(), 0..8)), 0..3),
        )
            .prop_map(|((m, s, ia, pid), (sn, mc, mac), name, families, dibs)| {
                let mut friendly_name = [0u8; 30];
                friendly_name.copy_from_slice(&name);
                DeviceDescription {
                    device_info: DeviceInfo {
                        medium: Medium::from(m),
                        device_status: s,
                        individual_address: IndividualAddress::from_raw(ia),
                        project_installation_id: pid,
                        serial_number: sn,
                        multicast_address: Ipv4Addr::from(mc),
                        mac_address: mac,
                        friendly_name,
                    },
                    service_families: families
                        .into_iter()
                        .map(|(f, version)| ServiceFamily {
                            family: ServiceFamilyId::from(f),
                            version,
                        })
                        .collect(),
                    other_dibs: dibs
                        .into_iter()
                        .map(|(t, data)| RawDib {
                            dib_type: DibType::from(t),
                            data,
                        })
                        .collect(),
                }
            })
    }

    fn arb_frame() -> impl Strategy<Value = KnxIpFrame> {
        prop_oneof![
            hpai().prop_map(|h| KnxIpFrame::SearchRequest {
                discovery_endpoint: h
            }),
            (hpai(), description()).prop_map(|(h, d)| KnxIpFrame::SearchResponse {
                control_endpoint: h,
                description: d
            }),
            hpai().prop_map(|h| KnxIpFrame::DescriptionRequest {
                control_endpoint: h
            }),
            description().prop_map(KnxIpFrame::DescriptionResponse),
            (hpai(), hpai(), cri()).prop_map(|(c, d, cri)| KnxIpFrame::ConnectRequest {
                control_endpoint: c,
                data_endpoint: d,
                cri
            }),
            (any::<u8>(), status(), proptest::option::of((hpai(), crd()))).prop_map(
                |(channel_id, status, endpoint)| KnxIpFrame::ConnectResponse {
                    channel_id,
                    status,
                    endpoint
                }
            ),
            (any::<u8>(), hpai()).prop_map(|(channel_id, h)| {
                KnxIpFrame::ConnectionStateRequest {
                    channel_id,
                    control_endpoint: h,
                }
            }),
            (any::<u8>(), status()).prop_map(|(channel_id, status)| {
                KnxIpFrame::ConnectionStateResponse { channel_id, status }
            }),
            (any::<u8>(), hpai()).prop_map(|(channel_id, h)| KnxIpFrame::DisconnectRequest {
                channel_id,
                control_endpoint: h
            }),
            (any::<u8>(), status()).prop_map(|(channel_id, status)| {
                KnxIpFrame::DisconnectResponse { channel_id, status }
            }),
            (any::<u8>(), any::<u8>(), arb_cemi()).prop_map(|(channel_id, sequence, cemi)| {
                KnxIpFrame::TunnellingRequest {
                    channel_id,
                    sequence,
                    cemi,
                }
            }),
            (any::<u8>(), any::<u8>(), status()).prop_map(|(channel_id, sequence, status)| {
                KnxIpFrame::TunnellingAck {
                    channel_id,
                    sequence,
                    status,
                }
            }),
            (any::<u8>(), any::<u8>(), arb_cemi()).prop_map(|(channel_id, sequence, cemi)| {
                KnxIpFrame::DeviceConfigurationRequest {
                    channel_id,
                    sequence,
                    cemi,
                }
            }),
            (any::<u8>(), any::<u8>(), status()).prop_map(|(channel_id, sequence, status)| {
                KnxIpFrame::DeviceConfigurationAck {
                    channel_id,
                    sequence,
                    status,
                }
            }),
            arb_cemi().prop_map(KnxIpFrame::RoutingIndication),
            (any::<u8>(), any::<u16>()).prop_map(|(device_state, lost_messages)| {
                KnxIpFrame::RoutingLostMessage {
                    device_state,
                    lost_messages,
                }
            }),
            (any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
                |(device_state, wait_time_ms, control)| KnxIpFrame::RoutingBusy {
                    device_state,
                    wait_time_ms,
                    control
                }
            ),
            (any::<u16>(), vec(any::<u8>(), 0..10))
                .prop_filter("unknown", |(s, _)| !KnxIpFrame::is_known_service(*s))
                .prop_map(|(service_type, body)| KnxIpFrame::Unknown { service_type, body }),
        ]
    }

    proptest! {
        #[test]
        fn knxip_round_trip(frame in arb_frame()) {
            let bytes = frame.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), frame.buffer_len());
            prop_assert_eq!(KnxIpFrame::parse(&bytes).unwrap(), frame);
        }

        #[test]
        fn knxip_parse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..96)) {
            if let Ok(frame) = KnxIpFrame::parse(&bytes) {
                prop_assert_eq!(frame.to_bytes().unwrap(), bytes);
                let _ = frame.to_string();
            }
        }

        #[test]
        fn knxip_parse_arbitrary_bodies(service in 0x0200u16..0x0540, body in vec(any::<u8>(), 0..80)) {
            // A valid header in front of arbitrary bodies reaches every body parser.
            let total = u16::try_from(body.len() + HEADER_LEN).unwrap();
            let mut bytes = vec![0x06, 0x10];
            bytes.extend(service.to_be_bytes());
            bytes.extend(total.to_be_bytes());
            bytes.extend(&body);
            if let Ok(frame) = KnxIpFrame::parse(&bytes) {
                prop_assert_eq!(frame.to_bytes().unwrap(), bytes);
                let _ = frame.to_string();
            }
        }
    }
}
