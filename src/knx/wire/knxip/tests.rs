use super::*;
use crate::knx::address::IndividualAddress;
use crate::knx::wire::cemi::Cemi;
use crate::knx::wire::cemi::tests::{GROUP_WRITE_IND, arb_cemi};
use proptest::collection::vec;
use proptest::prelude::*;
use std::net::Ipv4Addr;

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
