use super::*;
use crate::knx::link::testkit::{addr, bytes, events, group_write, ia, sent, tunnelling_request};
use crate::knx::wire::cemi::{MessageCode, PropFrame};

const LOCAL: &str = "127.0.0.1:3671";

fn server() -> TunnelServer {
    let SocketAddr::V4(local) = addr(LOCAL) else {
        unreachable!()
    };
    let mut s = TunnelServer::new(ia("1.1.10"), local);
    assert_eq!(events(&mut s), [LinkEvent::State(LinkState::Connected)]);
    s
}

fn client_addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50000 + n))
}

fn hpai_of(a: SocketAddr) -> Hpai {
    let SocketAddr::V4(a) = a else { unreachable!() };
    Hpai::udp(*a.ip(), a.port())
}

fn connect_request(a: SocketAddr) -> Vec<u8> {
    bytes(&KnxIpFrame::ConnectRequest {
        control_endpoint: hpai_of(a),
        data_endpoint: hpai_of(a),
        cri: Cri::Tunnel {
            layer: TunnelLayer::LinkLayer,
            individual_address: None,
        },
    })
}

/// Connects client `n` and returns its channel and address.
fn connect(s: &mut TunnelServer, now: Instant, n: u16) -> (u8, IndividualAddress) {
    s.handle_datagram(now, client_addr(n), &connect_request(client_addr(n)));
    match sent(s).as_slice() {
        [
            (
                to,
                KnxIpFrame::ConnectResponse {
                    channel_id,
                    status: Status::NoError,
                    endpoint: Some((hpai, Crd::Tunnel { individual_address })),
                },
            ),
        ] if *to == client_addr(n) && *hpai == hpai_of(addr(LOCAL)) => {
            (*channel_id, *individual_address)
        }
        other => panic!("connect {n}: {other:?}"),
    }
}

fn ack(channel: u8, sequence: u8) -> Vec<u8> {
    bytes(&KnxIpFrame::TunnellingAck {
        channel_id: channel,
        sequence,
        status: Status::NoError,
    })
}

#[test]
fn search_and_description_describe_the_gateway() {
    let mut s = server();
    let now = Instant::now();
    let search = bytes(&KnxIpFrame::SearchRequest {
        discovery_endpoint: hpai_of(client_addr(1)),
    });
    s.handle_datagram(now, client_addr(9), &search);
    let out = sent(&mut s);
    let [
        (
            to,
            KnxIpFrame::SearchResponse {
                control_endpoint,
                description,
            },
        ),
    ] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(*to, client_addr(1), "answered to the discovery endpoint");
    assert_eq!(*control_endpoint, hpai_of(addr(LOCAL)));
    assert_eq!(description.device_info.name(), "knx-echarge");
    assert_eq!(description.device_info.medium, Medium::Tp1);
    assert_eq!(description.device_info.individual_address, ia("1.1.10"));
    let families: Vec<_> = description
        .service_families
        .iter()
        .map(|f| f.family)
        .collect();
    assert_eq!(
        families,
        [
            ServiceFamilyId::Core,
            ServiceFamilyId::DeviceManagement,
            ServiceFamilyId::Tunnelling
        ]
    );
    // Route-back HPAI: the answer goes to the sender.
    let describe = bytes(&KnxIpFrame::DescriptionRequest {
        control_endpoint: Hpai::unspecified(HostProtocol::Udp),
    });
    s.handle_datagram(now, client_addr(2), &describe);
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DescriptionResponse(d))] if *to == client_addr(2) && *d == s.description())
    );
}

#[test]
fn tunnels_get_consecutive_addresses_skipping_the_gateway() {
    let mut s = server();
    let now = Instant::now();
    let mut seen = Vec::new();
    for n in 0..u16::try_from(MAX_TUNNELS).unwrap() {
        seen.push(connect(&mut s, now, n));
    }
    let addresses: Vec<String> = seen.iter().map(|(_, a)| a.to_string()).collect();
    assert_eq!(
        addresses,
        [
            "1.1.11", "1.1.12", "1.1.13", "1.1.14", "1.1.15", "1.1.16", "1.1.17", "1.1.18"
        ]
    );
    let mut channels: Vec<u8> = seen.iter().map(|(c, _)| *c).collect();
    channels.dedup();
    assert_eq!(channels.len(), MAX_TUNNELS);
    // One more is refused.
    s.handle_datagram(now, client_addr(99), &connect_request(client_addr(99)));
    let out = sent(&mut s);
    assert!(matches!(
        out.as_slice(),
        [(
            _,
            KnxIpFrame::ConnectResponse {
                status: Status::NoMoreConnections,
                ..
            }
        )]
    ));
    // Near the end of the line the addresses wrap and skip device 0 and the gateway.
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3671);
    let s = TunnelServer::new(ia("1.1.254"), local);
    let wrapped: Vec<String> = s
        .tunnel_addresses()
        .take(3)
        .map(|a| a.to_string())
        .collect();
    assert_eq!(wrapped, ["1.1.255", "1.1.1", "1.1.2"]);
    let s = TunnelServer::new(ia("1.1.0"), local);
    assert!(s.tunnel_addresses().all(|a| a != ia("1.1.0")));
}

#[test]
fn unsupported_connection_types_are_refused() {
    let mut s = server();
    let now = Instant::now();
    for (cri, status) in [
        (
            Cri::Tunnel {
                layer: TunnelLayer::Busmonitor,
                individual_address: None,
            },
            Status::TunnellingLayer,
        ),
        (
            Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address: Some(ia("1.1.99")),
            },
            Status::NoTunnellingAddress,
        ),
    ] {
        let request = bytes(&KnxIpFrame::ConnectRequest {
            control_endpoint: hpai_of(client_addr(1)),
            data_endpoint: hpai_of(client_addr(1)),
            cri,
        });
        s.handle_datagram(now, client_addr(1), &request);
        let out = sent(&mut s);
        assert!(
            matches!(out.as_slice(), [(_, KnxIpFrame::ConnectResponse { status: st, endpoint: None, .. })] if *st == status),
            "{out:?}"
        );
    }
    // A requested free address of the pool is granted.
    let request = bytes(&KnxIpFrame::ConnectRequest {
        control_endpoint: hpai_of(client_addr(1)),
        data_endpoint: hpai_of(client_addr(1)),
        cri: Cri::Tunnel {
            layer: TunnelLayer::LinkLayer,
            individual_address: Some(ia("1.1.13")),
        },
    });
    s.handle_datagram(now, client_addr(1), &request);
    assert_eq!(s.tunnels().first().map(|t| t.1), Some(ia("1.1.13")));
}

#[test]
fn a_request_is_confirmed_fanned_out_and_delivered() {
    let mut s = server();
    let now = Instant::now();
    let (a, a_addr) = connect(&mut s, now, 1);
    let (b, _) = connect(&mut s, now, 2);
    let (c, _) = connect(&mut s, now, 3);
    let req = group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1);
    s.handle_datagram(now, client_addr(1), &tunnelling_request(a, 0, req));
    let out = sent(&mut s);
    let mut expected_ind = group_write(LDataService::Ind, "0.0.0", (1, 2, 3), 1);
    expected_ind.source = a_addr;
    let mut expected_con = expected_ind.clone();
    expected_con.service = LDataService::Con;
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(
        matches!(&out[0], (to, KnxIpFrame::TunnellingAck { channel_id, sequence: 0, status: Status::NoError }) if *to == client_addr(1) && *channel_id == a)
    );
    assert!(
        matches!(&out[1], (to, KnxIpFrame::TunnellingRequest { channel_id, sequence: 0, cemi: Cemi::LData(f) }) if *to == client_addr(1) && *channel_id == a && *f == expected_con)
    );
    assert!(
        matches!(&out[2], (to, KnxIpFrame::TunnellingRequest { channel_id, sequence: 0, cemi: Cemi::LData(f) }) if *to == client_addr(2) && *channel_id == b && *f == expected_ind)
    );
    assert!(
        matches!(&out[3], (to, KnxIpFrame::TunnellingRequest { channel_id, sequence: 0, cemi: Cemi::LData(f) }) if *to == client_addr(3) && *channel_id == c && *f == expected_ind)
    );
    assert_eq!(events(&mut s), [LinkEvent::Frame(expected_ind.clone())]);
    // A repetition is acknowledged again but not delivered twice.
    s.handle_datagram(
        now,
        client_addr(1),
        &tunnelling_request(a, 0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1)),
    );
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(_, KnxIpFrame::TunnellingAck { sequence: 0, .. })]
    ));
    assert!(events(&mut s).is_empty());
    // Per-tunnel sequence: b's next frame waits for b's ACK, then goes with sequence 1.
    s.handle_frame(now, group_write(LDataService::Req, "0.0.0", (2, 0, 1), 0));
    let out = sent(&mut s);
    assert!(
        out.iter().all(|(to, _)| *to != client_addr(2)),
        "b still owes an ACK"
    );
    s.handle_datagram(now, client_addr(2), &ack(b, 0));
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::TunnellingRequest { sequence: 1, cemi: Cemi::LData(f), .. })] if *to == client_addr(2) && f.source == ia("1.1.10") && f.service == LDataService::Ind),
        "{out:?}"
    );
}

#[test]
fn gateway_frames_go_to_every_tunnel() {
    let mut s = server();
    let now = Instant::now();
    let (a, _) = connect(&mut s, now, 1);
    let (b, _) = connect(&mut s, now, 2);
    s.handle_frame(now, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let out = sent(&mut s);
    let mut to: Vec<(SocketAddr, u8)> = Vec::new();
    for (dest, frame) in &out {
        let KnxIpFrame::TunnellingRequest {
            channel_id,
            cemi: Cemi::LData(f),
            ..
        } = frame
        else {
            panic!("{frame:?}")
        };
        assert_eq!(f.service, LDataService::Ind);
        assert_eq!(f.source, ia("1.1.10"));
        to.push((*dest, *channel_id));
    }
    assert_eq!(to, [(client_addr(1), a), (client_addr(2), b)]);
    assert!(
        events(&mut s).is_empty(),
        "the gateway does not hear itself"
    );
}

#[test]
fn an_unacknowledged_tunnel_is_repeated_once_then_dropped() {
    let mut s = server();
    let t0 = Instant::now();
    let (a, _) = connect(&mut s, t0, 1);
    s.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let first = sent(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + ACK_TIMEOUT));
    s.handle_timeout(t0 + ACK_TIMEOUT);
    assert_eq!(sent(&mut s), first, "the same request is repeated");
    s.handle_timeout(t0 + ACK_TIMEOUT * 2);
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DisconnectRequest { channel_id, .. })] if *to == client_addr(1) && *channel_id == a)
    );
    assert!(s.tunnels().is_empty());
}

#[test]
fn tunnels_without_heartbeat_are_dropped_after_120_s() {
    let mut s = server();
    let t0 = Instant::now();
    let (a, _) = connect(&mut s, t0, 1);
    let (b, _) = connect(&mut s, t0, 2);
    let heartbeat = bytes(&KnxIpFrame::ConnectionStateRequest {
        channel_id: a,
        control_endpoint: hpai_of(client_addr(1)),
    });
    let t1 = t0 + Duration::from_secs(100);
    s.handle_datagram(t1, client_addr(1), &heartbeat);
    assert!(
        matches!(sent(&mut s).as_slice(), [(to, KnxIpFrame::ConnectionStateResponse { status: Status::NoError, .. })] if *to == client_addr(1))
    );
    assert_eq!(s.poll_timeout(), Some(t0 + HEARTBEAT_TIMEOUT));
    s.handle_timeout(t0 + HEARTBEAT_TIMEOUT);
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DisconnectRequest { channel_id, .. })] if *to == client_addr(2) && *channel_id == b)
    );
    assert_eq!(s.tunnels().len(), 1);
    assert_eq!(s.poll_timeout(), Some(t1 + HEARTBEAT_TIMEOUT));
    // A heartbeat for a dropped channel is answered with E_CONNECTION_ID.
    let stale = bytes(&KnxIpFrame::ConnectionStateRequest {
        channel_id: b,
        control_endpoint: hpai_of(client_addr(2)),
    });
    s.handle_datagram(t1, client_addr(2), &stale);
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(
            _,
            KnxIpFrame::ConnectionStateResponse {
                status: Status::ConnectionId,
                ..
            }
        )]
    ));
}

#[test]
fn disconnects_are_answered() {
    let mut s = server();
    let now = Instant::now();
    let (a, _) = connect(&mut s, now, 1);
    let request = |ch| {
        bytes(&KnxIpFrame::DisconnectRequest {
            channel_id: ch,
            control_endpoint: hpai_of(client_addr(1)),
        })
    };
    s.handle_datagram(now, client_addr(1), &request(a));
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(
            _,
            KnxIpFrame::DisconnectResponse {
                status: Status::NoError,
                ..
            }
        )]
    ));
    assert!(s.tunnels().is_empty());
    s.handle_datagram(now, client_addr(1), &request(a));
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(
            _,
            KnxIpFrame::DisconnectResponse {
                status: Status::ConnectionId,
                ..
            }
        )]
    ));
    // The address is free again.
    assert_eq!(connect(&mut s, now, 2).1, ia("1.1.11"));
}

#[test]
fn malformed_input_is_dropped_and_serving_goes_on() {
    let mut s = server();
    let now = Instant::now();
    let (a, _) = connect(&mut s, now, 1);
    let good = tunnelling_request(a, 0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let mut wrong_total = good.clone();
    wrong_total[5] = wrong_total[5].wrapping_add(3);
    let mut garbage_cemi = good.clone();
    garbage_cemi[11] = 0xFF; // L_Data.req whose additional-info length runs past the frame
    let mut ldata_ind = good.clone();
    ldata_ind[10] = 0x29; // a tunnel client may not send L_Data.ind
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x06, 0x10, 0x04], // truncated header
        wrong_total,            // total length disagrees
        vec![0x06, 0x10, 0x07, 0x77, 0x00, 0x08, 0xDE, 0xAD], // unknown service type
        tunnelling_request(
            a.wrapping_add(1),
            0,
            group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1),
        ), // bad channel
        garbage_cemi,
        vec![0x06, 0x10, 0x04, 0x20, 0x00, 0x0A, 0x04, a, 0x00, 0x00], // empty cEMI
        vec![
            0x06, 0x20, 0x02, 0x01, 0x00, 0x0E, 8, 1, 127, 0, 0, 1, 0x0E, 0x57,
        ], // wrong version
    ];
    for datagram in &bad {
        s.handle_datagram(now, client_addr(1), datagram);
        assert!(
            sent(&mut s).is_empty(),
            "{datagram:02x?} must get no answer"
        );
        assert!(events(&mut s).is_empty());
    }
    // An L_Data.ind from a tunnel is acknowledged (the sequence is fine) but not served.
    s.handle_datagram(now, client_addr(1), &ldata_ind);
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(_, KnxIpFrame::TunnellingAck { sequence: 0, .. })]
    ));
    assert!(events(&mut s).is_empty());
    // The tunnel still works: the next sequence number is served.
    let next = tunnelling_request(a, 1, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    s.handle_datagram(now, client_addr(1), &next);
    assert_eq!(sent(&mut s).len(), 2, "ACK and L_Data.con");
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn close_disconnects_every_tunnel() {
    let mut s = server();
    let now = Instant::now();
    connect(&mut s, now, 1);
    connect(&mut s, now, 2);
    s.close(now);
    let out = sent(&mut s);
    assert_eq!(out.len(), 2);
    assert!(
        out.iter()
            .all(|(_, f)| matches!(f, KnxIpFrame::DisconnectRequest { .. }))
    );
    assert!(s.is_closed());
    assert_eq!(events(&mut s), [LinkEvent::State(LinkState::Down)]);
}

#[test]
fn the_discovery_address_answers_search_only() {
    let mut s = server();
    let now = Instant::now();
    let search = bytes(&KnxIpFrame::SearchRequest {
        discovery_endpoint: hpai_of(client_addr(1)),
    });
    s.handle_discovery_datagram(now, client_addr(9), None, &search);
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::SearchResponse { .. })] if *to == client_addr(1)),
        "{out:?}"
    );
    // Whatever else reaches the group (routers' indications, connection attempts, garbage)
    // gets no answer and opens nothing.
    let connect = connect_request(client_addr(2));
    let routing = bytes(&KnxIpFrame::RoutingIndication(Cemi::LData(group_write(
        LDataService::Ind,
        "1.1.1",
        (1, 2, 3),
        1,
    ))));
    for datagram in [connect, routing, vec![0x06, 0x10, 0x02]] {
        s.handle_discovery_datagram(now, client_addr(2), None, &datagram);
        assert!(sent(&mut s).is_empty());
        assert!(events(&mut s).is_empty());
    }
    assert!(s.tunnels().is_empty());
}

/// A server bound to 0.0.0.0 (every interface) names, in SEARCH_RESPONSE, CONNECT_RESPONSE
/// and its DISCONNECT_REQUEST, the address each request arrived at: a client on the second
/// network is told the gateway's address there, not on the first.
#[test]
fn bound_to_every_interface_the_endpoint_is_the_arrival_address() {
    let mut s = TunnelServer::new(ia("1.1.10"), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3671));
    assert_eq!(events(&mut s), [LinkEvent::State(LinkState::Connected)]);
    let now = Instant::now();
    let (net_a, net_b) = (Ipv4Addr::new(10, 0, 1, 1), Ipv4Addr::new(10, 0, 2, 1));
    let client_a = SocketAddr::from(([10, 0, 1, 7], 50001));
    let client_b = SocketAddr::from(([10, 0, 2, 7], 50002));
    let search = |client| {
        bytes(&KnxIpFrame::SearchRequest {
            discovery_endpoint: hpai_of(client),
        })
    };
    let search_answer = |s: &mut TunnelServer| match sent(s).as_slice() {
        [
            (
                to,
                KnxIpFrame::SearchResponse {
                    control_endpoint, ..
                },
            ),
        ] => (*to, *control_endpoint),
        other => panic!("{other:?}"),
    };
    // Multicast on the server socket (0.0.0.0:3671) and on a discovery socket.
    s.handle_datagram_at(now, client_a, Some(net_a), &search(client_a));
    assert_eq!(search_answer(&mut s), (client_a, Hpai::udp(net_a, 3671)));
    s.handle_discovery_datagram(now, client_b, Some(net_b), &search(client_b));
    assert_eq!(search_answer(&mut s), (client_b, Hpai::udp(net_b, 3671)));
    // Unknown arrival (or a group address reported as such): "use the sender's".
    for local in [None, Some(Ipv4Addr::new(224, 0, 23, 12))] {
        s.handle_datagram_at(now, client_a, local, &search(client_a));
        assert_eq!(
            search_answer(&mut s),
            (client_a, Hpai::unspecified(HostProtocol::Udp))
        );
    }

    // A tunnel from network B is told B's address, now and when the server closes.
    s.handle_datagram_at(now, client_b, Some(net_b), &connect_request(client_b));
    match sent(&mut s).as_slice() {
        [
            (
                to,
                KnxIpFrame::ConnectResponse {
                    status: Status::NoError,
                    endpoint: Some((hpai, _)),
                    ..
                },
            ),
        ] => assert_eq!((*to, *hpai), (client_b, Hpai::udp(net_b, 3671))),
        other => panic!("{other:?}"),
    }
    s.close(now);
    match sent(&mut s).as_slice() {
        [
            (
                to,
                KnxIpFrame::DisconnectRequest {
                    control_endpoint, ..
                },
            ),
        ] => assert_eq!((*to, *control_endpoint), (client_b, Hpai::udp(net_b, 3671))),
        other => panic!("{other:?}"),
    }
}

/// A server bound to one address names that address, wherever a request arrived.
#[test]
fn bound_to_one_address_the_endpoint_is_that_address() {
    let mut s = server();
    let now = Instant::now();
    let search = bytes(&KnxIpFrame::SearchRequest {
        discovery_endpoint: hpai_of(client_addr(1)),
    });
    s.handle_discovery_datagram(
        now,
        client_addr(1),
        Some(Ipv4Addr::new(10, 0, 2, 1)),
        &search,
    );
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(_, KnxIpFrame::SearchResponse { control_endpoint, .. })] if *control_endpoint == hpai_of(addr(LOCAL))
    ));
}

/// A tunnel belongs to the endpoints that opened it: requests for its channel from anywhere
/// else neither close it, nor keep it alive, nor reach the bus, and are counted.
#[test]
fn only_the_tunnels_owner_may_use_its_channel() {
    let mut s = server();
    let now = Instant::now();
    let (a, _) = connect(&mut s, now, 1);
    let intruder = client_addr(7);
    // DISCONNECT of a's channel from another port: refused, a stays.
    let disconnect = bytes(&KnxIpFrame::DisconnectRequest {
        channel_id: a,
        control_endpoint: hpai_of(intruder),
    });
    s.handle_datagram(now, intruder, &disconnect);
    assert!(sent(&mut s).is_empty(), "no answer to the intruder");
    assert_eq!(s.tunnels().len(), 1);
    // Its slot cannot be taken either: a new client gets another channel.
    let (b, _) = connect(&mut s, now, 8);
    assert_ne!(a, b);
    // A heartbeat from the intruder does not keep a's tunnel alive.
    let state = bytes(&KnxIpFrame::ConnectionStateRequest {
        channel_id: a,
        control_endpoint: hpai_of(intruder),
    });
    s.handle_datagram(now + Duration::from_secs(100), intruder, &state);
    assert!(sent(&mut s).is_empty());
    // An injected frame is neither acknowledged nor delivered.
    let req = group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1);
    s.handle_datagram(now, intruder, &tunnelling_request(a, 0, req));
    assert!(sent(&mut s).is_empty());
    assert!(events(&mut s).is_empty());
    assert_eq!(s.refused(), 3);
    // b's heartbeats keep b; a, without its own, is dropped after 120 s.
    s.handle_datagram(
        now + Duration::from_secs(100),
        client_addr(8),
        &bytes(&KnxIpFrame::ConnectionStateRequest {
            channel_id: b,
            control_endpoint: hpai_of(client_addr(8)),
        }),
    );
    s.handle_timeout(now + HEARTBEAT_TIMEOUT + Duration::from_secs(1));
    assert_eq!(s.tunnels().iter().map(|(c, _)| *c).collect::<Vec<_>>(), [b]);
    // The owner itself still can close its tunnel.
    let _ = sent(&mut s);
    s.handle_datagram(
        now,
        client_addr(8),
        &bytes(&KnxIpFrame::DisconnectRequest {
            channel_id: b,
            control_endpoint: hpai_of(client_addr(8)),
        }),
    );
    assert!(s.tunnels().is_empty());
}

/// Answers go only to whoever asked: an HPAI naming a third host, multicast or broadcast is
/// refused, and route-back (0.0.0.0:0) answers the sender.
#[test]
fn endpoints_must_be_the_senders_own() {
    let mut s = server();
    let now = Instant::now();
    let sender = client_addr(1);
    for foreign in [
        Hpai::udp(Ipv4Addr::new(10, 9, 8, 7), 3671),
        Hpai::udp(Ipv4Addr::new(224, 0, 23, 12), 3671),
        Hpai::udp(Ipv4Addr::BROADCAST, 3671),
    ] {
        let search = bytes(&KnxIpFrame::SearchRequest {
            discovery_endpoint: foreign,
        });
        s.handle_datagram(now, sender, &search);
        let description = bytes(&KnxIpFrame::DescriptionRequest {
            control_endpoint: foreign,
        });
        s.handle_datagram(now, sender, &description);
        let connect = bytes(&KnxIpFrame::ConnectRequest {
            control_endpoint: foreign,
            data_endpoint: foreign,
            cri: Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address: None,
            },
        });
        s.handle_datagram(now, sender, &connect);
        assert!(sent(&mut s).is_empty(), "{foreign}");
    }
    assert!(s.tunnels().is_empty());
    let nat = bytes(&KnxIpFrame::SearchRequest {
        discovery_endpoint: Hpai::udp(Ipv4Addr::UNSPECIFIED, 0),
    });
    s.handle_datagram(now, sender, &nat);
    assert!(
        matches!(sent(&mut s).as_slice(), [(to, KnxIpFrame::SearchResponse { .. })] if *to == sender)
    );
}

/// One source gets a bounded number of answers: a burst, then the refill rate.
#[test]
fn answers_per_source_are_rate_limited() {
    let mut s = server();
    let now = Instant::now();
    let search = |a: SocketAddr| {
        bytes(&KnxIpFrame::SearchRequest {
            discovery_endpoint: hpai_of(a),
        })
    };
    for _ in 0..100 {
        s.handle_datagram(now, client_addr(1), &search(client_addr(1)));
    }
    assert_eq!(sent(&mut s).len(), ANSWER_BURST as usize);
    // Another source is not affected.
    let other = SocketAddr::from(([127, 0, 0, 2], 40000));
    s.handle_datagram(now, other, &search(other));
    assert_eq!(sent(&mut s).len(), 1);
    // After a second the first source has ANSWER_RATE answers again.
    for _ in 0..100 {
        s.handle_datagram(
            now + Duration::from_secs(1),
            client_addr(1),
            &search(client_addr(1)),
        );
    }
    assert_eq!(sent(&mut s).len(), ANSWER_RATE as usize);
}

#[test]
fn the_device_info_dib_follows_programming_mode_and_the_programmed_address() {
    let mut s = server();
    assert_eq!(s.description().device_info.device_status, 0);
    s.set_own_device(crate::knx::link::OwnDevice {
        own: ia("1.1.20"),
        groups: None,
        programming_mode: true,
        identity: crate::knx::device::Identity::default(),
    });
    let info = s.description().device_info;
    assert_eq!(info.device_status, 1, "bit 0: programming mode");
    assert_eq!(info.individual_address, ia("1.1.20"));
    // A new tunnel gets an address next to the new one, never the device's own.
    let (_, address) = connect(&mut s, Instant::now(), 1);
    assert_eq!(address, ia("1.1.21"));
    s.set_own_device(crate::knx::link::OwnDevice {
        own: ia("1.1.20"),
        groups: None,
        programming_mode: false,
        identity: crate::knx::device::Identity::default(),
    });
    assert_eq!(s.description().device_info.device_status, 0);
}

// ---- device-management connections (KNX 03.08.03; cEMI 03.06.03 §4.1.7) ----

fn identity() -> crate::knx::device::Identity {
    crate::knx::device::Identity {
        serial_number: [0x00, 0xFA, 0x01, 0x02, 0x03, 0x04],
        manufacturer_id: 0x00FA,
        order_info: *b"KNX-EC-01\0",
        hardware_type: [0, 0, 0, 0, 0, 1],
        firmware_version: [0x00, 0x41],
    }
}

/// Opens a device-management connection for client `n` and returns its channel.
fn connect_management(s: &mut TunnelServer, now: Instant, n: u16) -> u8 {
    let request = bytes(&KnxIpFrame::ConnectRequest {
        control_endpoint: hpai_of(client_addr(n)),
        data_endpoint: hpai_of(client_addr(n)),
        cri: Cri::DeviceManagement,
    });
    s.handle_datagram(now, client_addr(n), &request);
    match sent(s).as_slice() {
        [
            (
                to,
                KnxIpFrame::ConnectResponse {
                    channel_id,
                    status: Status::NoError,
                    endpoint: Some((hpai, Crd::DeviceManagement)),
                },
            ),
        ] if *to == client_addr(n) && *hpai == hpai_of(addr(LOCAL)) => *channel_id,
        other => panic!("management connect {n}: {other:?}"),
    }
}

/// An M_PropRead.req / M_PropWrite.req as a DEVICE_CONFIGURATION_REQUEST.
fn prop_request(
    channel: u8,
    sequence: u8,
    code: MessageCode,
    object_type: u16,
    property_id: u8,
    start_index: u16,
    data: &[u8],
) -> Vec<u8> {
    let frame = PropFrame {
        object_type,
        instance: 1,
        property_id,
        count: 1,
        start_index,
        data: data.to_vec(),
    };
    bytes(&KnxIpFrame::DeviceConfigurationRequest {
        channel_id: channel,
        sequence,
        cemi: Cemi::Other {
            code,
            body: frame.to_body().unwrap(),
        },
    })
}

fn device_ack(channel: u8, sequence: u8) -> Vec<u8> {
    bytes(&KnxIpFrame::DeviceConfigurationAck {
        channel_id: channel,
        sequence,
        status: Status::NoError,
    })
}

/// Expects the server's ACK of `sequence` and its answer with `answer_seq`; returns the
/// answer's message code and property frame.
fn expect_answer(
    s: &mut TunnelServer,
    channel: u8,
    sequence: u8,
    answer_seq: u8,
) -> (MessageCode, PropFrame) {
    let out = sent(s);
    match out.as_slice() {
        [
            (
                to_ack,
                KnxIpFrame::DeviceConfigurationAck {
                    channel_id: ack_ch,
                    sequence: acked,
                    status: Status::NoError,
                },
            ),
            (
                to,
                KnxIpFrame::DeviceConfigurationRequest {
                    channel_id,
                    sequence: seq,
                    cemi: Cemi::Other { code, body },
                },
            ),
        ] if *to_ack == client_addr(1)
            && *to == client_addr(1)
            && *ack_ch == channel
            && *channel_id == channel
            && *acked == sequence
            && *seq == answer_seq =>
        {
            (*code, PropFrame::parse(body).unwrap())
        }
        other => panic!("{other:?}"),
    }
}

fn managed_server() -> TunnelServer {
    let mut s = server();
    s.set_own_device(crate::knx::link::OwnDevice {
        own: ia("1.1.10"),
        groups: None,
        programming_mode: true,
        identity: identity(),
    });
    s
}

#[test]
fn a_management_connection_reads_the_device_object() {
    let mut s = managed_server();
    let now = Instant::now();
    let ch = connect_management(&mut s, now, 1);
    assert_eq!(s.management_connections(), [ch]);
    assert!(s.tunnels().is_empty(), "no tunnel address is taken");
    // Serial number (PID 11).
    s.handle_datagram(
        now,
        client_addr(1),
        &prop_request(ch, 0, MessageCode::MPropReadReq, 0, 11, 1, &[]),
    );
    let (code, con) = expect_answer(&mut s, ch, 0, 0);
    assert_eq!(code, MessageCode::MPropReadCon);
    assert_eq!(
        (
            con.object_type,
            con.instance,
            con.property_id,
            con.count,
            con.start_index
        ),
        (0, 1, 11, 1, 1)
    );
    assert_eq!(con.data, identity().serial_number);
    // The next answer waits for the client's ACK of the first.
    s.handle_datagram(
        now,
        client_addr(1),
        &prop_request(ch, 1, MessageCode::MPropReadReq, 0, 54, 1, &[]),
    );
    let out = sent(&mut s);
    assert!(
        matches!(
            out.as_slice(),
            [(_, KnxIpFrame::DeviceConfigurationAck { sequence: 1, .. })]
        ),
        "{out:?}"
    );
    s.handle_datagram(now, client_addr(1), &device_ack(ch, 0));
    let out = sent(&mut s);
    let [
        (
            _,
            KnxIpFrame::DeviceConfigurationRequest {
                sequence: 1,
                cemi: Cemi::Other { code, body },
                ..
            },
        ),
    ] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(*code, MessageCode::MPropReadCon);
    let con = PropFrame::parse(body).unwrap();
    assert_eq!(
        (con.property_id, con.count, con.data.as_slice()),
        (54, 1, &[1u8][..])
    );
    s.handle_datagram(now, client_addr(1), &device_ack(ch, 1));
    // Manufacturer id, max APDU length, element count (start index 0).
    for (seq, pid, start, want) in [
        (2u8, 12u8, 1u16, vec![0x00, 0xFA]),
        (3, 56, 1, vec![0x00, 15]),
        (4, 11, 0, vec![0x00, 0x01]),
    ] {
        s.handle_datagram(
            now,
            client_addr(1),
            &prop_request(ch, seq, MessageCode::MPropReadReq, 0, pid, start, &[]),
        );
        let (code, con) = expect_answer(&mut s, ch, seq, seq);
        assert_eq!(
            (code, con.count, con.data),
            (MessageCode::MPropReadCon, 1, want)
        );
        s.handle_datagram(now, client_addr(1), &device_ack(ch, seq));
    }
    assert!(sent(&mut s).is_empty());
}

/// The KNXnet/IP parameter object (type 11, KNX 03.08.03 §2.5) reports the IP settings the
/// gateway told the server; the friendly name is an array of 30 one-byte elements, read in
/// pieces.
#[test]
fn a_management_connection_reads_the_ip_parameter_object() {
    use crate::knx::device::ip::{IpParameters, method};
    use std::net::Ipv4Addr;
    let mut s = managed_server();
    s.set_ip_parameters(IpParameters {
        current_method: method::DHCP,
        enabled_methods: method::DHCP | method::AUTO_IP,
        current_address: Ipv4Addr::new(192, 168, 1, 20),
        current_mask: Ipv4Addr::new(255, 255, 255, 0),
        current_gateway: Ipv4Addr::new(192, 168, 1, 1),
        mac: [2, 0, 0, 0, 0, 1],
        ..IpParameters::default()
    });
    let now = Instant::now();
    let ch = connect_management(&mut s, now, 1);
    let cases: [(u8, u16, Vec<u8>); 9] = [
        (1, 1, vec![0, 11]),
        (52, 1, vec![0x11, 0x0A]),
        (54, 1, vec![4]),
        (55, 1, vec![12]),
        (57, 1, vec![192, 168, 1, 20]),
        (58, 1, vec![255, 255, 255, 0]),
        (59, 1, vec![192, 168, 1, 1]),
        (64, 1, vec![2, 0, 0, 0, 0, 1]),
        // Friendly name: 30 elements.
        (76, 0, vec![0, 30]),
    ];
    let mut seq = 0u8;
    for (pid, start, want) in cases {
        s.handle_datagram(
            now,
            client_addr(1),
            &prop_request(ch, seq, MessageCode::MPropReadReq, 11, pid, start, &[]),
        );
        let (code, con) = expect_answer(&mut s, ch, seq, seq);
        assert_eq!(
            (code, con.data),
            (MessageCode::MPropReadCon, want),
            "PID {pid}"
        );
        s.handle_datagram(now, client_addr(1), &device_ack(ch, seq));
        seq += 1;
    }
    // The first 11 elements in one read, then element 12 (the first NUL).
    for (start, count, want) in [(1u16, 11u8, b"knx-echarge".to_vec()), (12, 1, vec![0])] {
        let body = PropFrame {
            object_type: 11,
            instance: 1,
            property_id: 76,
            count,
            start_index: start,
            data: vec![],
        };
        s.handle_datagram(
            now,
            client_addr(1),
            &bytes(&KnxIpFrame::DeviceConfigurationRequest {
                channel_id: ch,
                sequence: seq,
                cemi: Cemi::Other {
                    code: MessageCode::MPropReadReq,
                    body: body.to_body().unwrap(),
                },
            }),
        );
        let (_, con) = expect_answer(&mut s, ch, seq, seq);
        assert_eq!((con.count, con.data), (count, want));
        s.handle_datagram(now, client_addr(1), &device_ack(ch, seq));
        seq += 1;
    }
    // Beyond the 30 elements: index range error.
    s.handle_datagram(
        now,
        client_addr(1),
        &prop_request(ch, seq, MessageCode::MPropReadReq, 11, 76, 31, &[]),
    );
    let (_, con) = expect_answer(&mut s, ch, seq, seq);
    assert_eq!((con.count, con.data), (0, vec![0x09]));
}

/// M_PropWrite.req goes to the gateway's device stack ([`LinkEvent::PropertyWrite`]); the
/// server sends the M_PropWrite.con it is given back, positive or negative, on that
/// connection only.
#[test]
fn property_writes_go_to_the_device_stack_and_its_answer_is_confirmed() {
    let mut s = managed_server();
    let now = Instant::now();
    let ch = connect_management(&mut s, now, 1);
    while s.poll_event().is_some() {}
    s.handle_datagram(
        now,
        client_addr(1),
        &prop_request(ch, 0, MessageCode::MPropWriteReq, 0, 54, 1, &[1]),
    );
    // Acknowledged at once, answered only when the device stack has written.
    let out = sent(&mut s);
    assert!(
        matches!(
            out.as_slice(),
            [(_, KnxIpFrame::DeviceConfigurationAck { sequence: 0, .. })]
        ),
        "{out:?}"
    );
    let request = PropFrame {
        object_type: 0,
        instance: 1,
        property_id: 54,
        count: 1,
        start_index: 1,
        data: vec![1],
    };
    assert_eq!(
        s.poll_event(),
        Some(LinkEvent::PropertyWrite {
            channel: ch,
            request: request.clone()
        })
    );
    assert_eq!(s.poll_event(), None);
    let positive = PropFrame {
        data: Vec::new(),
        ..request.clone()
    };
    s.confirm_property_write(now, ch, positive.clone());
    let out = sent(&mut s);
    let [
        (
            to,
            KnxIpFrame::DeviceConfigurationRequest {
                channel_id,
                sequence: 0,
                cemi: Cemi::Other { code, body },
            },
        ),
    ] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!((*to, *channel_id), (client_addr(1), ch));
    assert_eq!(*code, MessageCode::MPropWriteCon);
    assert_eq!(PropFrame::parse(body).unwrap(), positive);
    s.handle_datagram(now, client_addr(1), &device_ack(ch, 0));
    // A negative answer goes out as it is given.
    s.confirm_property_write(now, ch, request.error(PropError::ReadOnly));
    let out = sent(&mut s);
    let [
        (
            _,
            KnxIpFrame::DeviceConfigurationRequest {
                cemi: Cemi::Other { body, .. },
                ..
            },
        ),
    ] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    let con = PropFrame::parse(body).unwrap();
    assert_eq!((con.count, con.data), (0, vec![0x05]));
    s.handle_datagram(now, client_addr(1), &device_ack(ch, 1));
    // An answer for a connection that has gone, or for a tunnel, is dropped.
    s.confirm_property_write(now, ch.wrapping_add(7), request);
    assert!(sent(&mut s).is_empty());
}

#[test]
fn unknown_properties_get_negative_confirmations() {
    let mut s = managed_server();
    let now = Instant::now();
    let ch = connect_management(&mut s, now, 1);
    let cases = [
        // Property 99 of the device object does not exist.
        (
            MessageCode::MPropReadReq,
            0u16,
            99u8,
            1u16,
            vec![],
            MessageCode::MPropReadCon,
            0x07u8,
        ),
        // PID 63 (DHCP/BootP server) of the IP parameter object is not served; a table
        // object (type 1) is not served over KNXnet/IP either.
        (
            MessageCode::MPropReadReq,
            11,
            63,
            1,
            vec![],
            MessageCode::MPropReadCon,
            0x07,
        ),
        (
            MessageCode::MPropReadReq,
            1,
            5,
            1,
            vec![],
            MessageCode::MPropReadCon,
            0x07,
        ),
        // Start index 2 of a one-element property.
        (
            MessageCode::MPropReadReq,
            0,
            11,
            2,
            vec![],
            MessageCode::MPropReadCon,
            0x09,
        ),
    ];
    for (seq, (req, object_type, pid, start, data, want_code, error)) in (0u8..).zip(cases) {
        s.handle_datagram(
            now,
            client_addr(1),
            &prop_request(ch, seq, req, object_type, pid, start, &data),
        );
        let (code, con) = expect_answer(&mut s, ch, seq, seq);
        assert_eq!(code, want_code);
        assert_eq!(
            (
                con.object_type,
                con.property_id,
                con.count,
                con.start_index,
                con.data
            ),
            (object_type, pid, 0, start, vec![error]),
            "case {seq}"
        );
        s.handle_datagram(now, client_addr(1), &device_ack(ch, seq));
    }
    // M_Reset.req and a malformed M_PropRead.req are acknowledged, not answered.
    for (seq, code, body) in [
        (4u8, MessageCode::MResetReq, vec![]),
        (5, MessageCode::MPropReadReq, vec![0x00]),
    ] {
        let request = bytes(&KnxIpFrame::DeviceConfigurationRequest {
            channel_id: ch,
            sequence: seq,
            cemi: Cemi::Other { code, body },
        });
        s.handle_datagram(now, client_addr(1), &request);
        let out = sent(&mut s);
        assert!(
            matches!(out.as_slice(), [(_, KnxIpFrame::DeviceConfigurationAck { sequence, .. })] if *sequence == seq),
            "{out:?}"
        );
    }
}

#[test]
fn management_sequence_and_ack_rules() {
    let mut s = managed_server();
    let t0 = Instant::now();
    let ch = connect_management(&mut s, t0, 1);
    let read = |seq| prop_request(ch, seq, MessageCode::MPropReadReq, 0, 11, 1, &[]);
    // Out of sequence: dropped without an ACK.
    s.handle_datagram(t0, client_addr(1), &read(5));
    assert!(sent(&mut s).is_empty());
    // In sequence: acknowledged and answered.
    s.handle_datagram(t0, client_addr(1), &read(0));
    let (_, first) = expect_answer(&mut s, ch, 0, 0);
    // The repetition (our ACK was lost) is acknowledged again, not answered again.
    s.handle_datagram(t0, client_addr(1), &read(0));
    let out = sent(&mut s);
    assert!(
        matches!(
            out.as_slice(),
            [(_, KnxIpFrame::DeviceConfigurationAck { sequence: 0, .. })]
        ),
        "{out:?}"
    );
    // A TUNNELLING_REQUEST or a foreign sender on the management channel is refused.
    let refused = s.refused();
    s.handle_datagram(
        t0,
        client_addr(1),
        &tunnelling_request(ch, 1, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1)),
    );
    s.handle_datagram(t0, client_addr(2), &read(1));
    assert!(sent(&mut s).is_empty());
    assert_eq!(s.refused(), refused + 2);
    // A TUNNELLING_ACK does not acknowledge a device-configuration answer; a wrong sequence
    // neither: the answer is repeated once, then the connection is dropped.
    s.handle_datagram(t0, client_addr(1), &ack(ch, 0));
    s.handle_datagram(t0, client_addr(1), &device_ack(ch, 7));
    assert!(sent(&mut s).is_empty());
    s.handle_timeout(t0 + ACK_TIMEOUT);
    let out = sent(&mut s);
    let [
        (
            _,
            KnxIpFrame::DeviceConfigurationRequest {
                sequence: 0,
                cemi: Cemi::Other { body, .. },
                ..
            },
        ),
    ] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        PropFrame::parse(body).unwrap(),
        first,
        "the same answer is repeated"
    );
    s.handle_timeout(t0 + ACK_TIMEOUT * 2);
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DisconnectRequest { channel_id, .. })] if *to == client_addr(1) && *channel_id == ch),
        "{out:?}"
    );
    assert!(s.management_connections().is_empty());
}

#[test]
fn management_connections_keep_alive_disconnect_and_hear_no_bus() {
    let mut s = managed_server();
    let t0 = Instant::now();
    let ch = connect_management(&mut s, t0, 1);
    let (tunnel, address) = connect(&mut s, t0, 2);
    assert_eq!(
        address,
        ia("1.1.11"),
        "the management connection takes no address"
    );
    // Bus traffic goes to tunnels only.
    s.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let out = sent(&mut s);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::TunnellingRequest { channel_id, .. })] if *to == client_addr(2) && *channel_id == tunnel),
        "{out:?}"
    );
    s.handle_datagram(t0, client_addr(2), &ack(tunnel, 0));
    // Heartbeat.
    let state = bytes(&KnxIpFrame::ConnectionStateRequest {
        channel_id: ch,
        control_endpoint: hpai_of(client_addr(1)),
    });
    s.handle_datagram(t0 + Duration::from_secs(100), client_addr(1), &state);
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(
            _,
            KnxIpFrame::ConnectionStateResponse {
                status: Status::NoError,
                ..
            }
        )]
    ));
    // Disconnect.
    let disconnect = bytes(&KnxIpFrame::DisconnectRequest {
        channel_id: ch,
        control_endpoint: hpai_of(client_addr(1)),
    });
    s.handle_datagram(t0, client_addr(1), &disconnect);
    assert!(matches!(
        sent(&mut s).as_slice(),
        [(
            _,
            KnxIpFrame::DisconnectResponse {
                status: Status::NoError,
                ..
            }
        )]
    ));
    assert!(s.management_connections().is_empty());
    assert_eq!(s.tunnels().len(), 1);
}
