//! [`KnxIpFrame`]: every KNXnet/IP service the gateway speaks, parsed from and emitted into
//! bytes.

use std::fmt;

use super::{
    Crd, Cri, DeviceDescription, HEADER_LEN, Hpai, KnxIpError, KnxIpPacket, PROTOCOL_VERSION,
    Result, ServiceType, Status, truncated,
};
use crate::knx::wire::cemi::Cemi;
use crate::knx::wire::{Reader, Writer, fmt_hex};

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
