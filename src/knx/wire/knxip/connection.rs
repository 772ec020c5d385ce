//! The addressing structures of connection set-up: HPAI (host protocol address), CRI and
//! CRD (connection request and response data).

use std::fmt;
use std::net::Ipv4Addr;

use super::{ConnectionType, HostProtocol, KnxIpError, Result, TunnelLayer, truncated};
use crate::knx::address::IndividualAddress;
use crate::knx::wire::{Reader, Writer};

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

    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self> {
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

    pub(super) fn write(self, w: &mut Writer<'_>) -> Option<()> {
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
pub(super) fn parse_struct<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<(u8, &'a [u8])> {
    let len = r.u8().ok_or(truncated(what))?;
    if len < 2 {
        return Err(KnxIpError::StructureLength { what, len });
    }
    let ty = r.u8().ok_or(truncated(what))?;
    let data = r.take(usize::from(len) - 2).ok_or(truncated(what))?;
    Ok((ty, data))
}

pub(super) fn write_struct(w: &mut Writer<'_>, ty: u8, data: &[u8]) -> Option<()> {
    w.u8(u8::try_from(data.len() + 2).ok()?)?;
    w.u8(ty)?;
    w.bytes(data)
}

impl Cri {
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self> {
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

    pub(super) fn buffer_len(&self) -> usize {
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

    pub(super) fn validate(&self) -> Result<()> {
        match self {
            Self::Other {
                connection_type: ConnectionType::Tunnel | ConnectionType::DeviceManagement,
                ..
            } => Err(KnxIpError::Field("CRI connection type")),
            Self::Other { data, .. } if data.len() > 253 => Err(KnxIpError::Field("CRI data")),
            _ => Ok(()),
        }
    }

    pub(super) fn write(&self, w: &mut Writer<'_>) -> Option<()> {
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
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self> {
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

    pub(super) fn buffer_len(&self) -> usize {
        match self {
            Self::Tunnel { .. } => 4,
            Self::DeviceManagement => 2,
            Self::Other { data, .. } => 2 + data.len(),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        match self {
            Self::Other {
                connection_type: ConnectionType::Tunnel | ConnectionType::DeviceManagement,
                ..
            } => Err(KnxIpError::Field("CRD connection type")),
            Self::Other { data, .. } if data.len() > 253 => Err(KnxIpError::Field("CRD data")),
            _ => Ok(()),
        }
    }

    pub(super) fn write(&self, w: &mut Writer<'_>) -> Option<()> {
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
