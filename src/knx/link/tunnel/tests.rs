use super::*;
use crate::knx::link::testkit::{addr, bytes, events, group_write, ia, sent, tunnelling_request};

const REMOTE: &str = "10.0.0.2:3671";
const DATA: &str = "10.0.0.2:3672";
const LOCAL: &str = "10.0.0.1:40000";

fn client(now: Instant) -> TunnelClient {
    let SocketAddr::V4(remote) = addr(REMOTE) else {
        unreachable!()
    };
    let SocketAddr::V4(local) = addr(LOCAL) else {
        unreachable!()
    };
    TunnelClient::new(now, remote, local)
}

fn connect_response(channel: u8) -> Vec<u8> {
    bytes(&KnxIpFrame::ConnectResponse {
        channel_id: channel,
        status: Status::NoError,
        endpoint: Some((
            Hpai::udp("10.0.0.2".parse().unwrap(), 3672),
            Crd::Tunnel {
                individual_address: ia("1.1.200"),
            },
        )),
    })
}

fn ack(channel: u8, sequence: u8) -> Vec<u8> {
    bytes(&KnxIpFrame::TunnellingAck {
        channel_id: channel,
        sequence,
        status: Status::NoError,
    })
}

/// A client connected on channel 7 at `t0`, with its outputs drained.
fn connected(t0: Instant) -> TunnelClient {
    let mut c = client(t0);
    assert_eq!(c.poll_timeout(), Some(t0));
    c.handle_timeout(t0);
    let out = sent(&mut c);
    assert!(
        matches!(
            out.as_slice(),
            [(to, KnxIpFrame::ConnectRequest { control_endpoint, data_endpoint, cri: Cri::Tunnel { layer: TunnelLayer::LinkLayer, individual_address: None } })]
                if *to == addr(REMOTE)
                    && *control_endpoint == Hpai::udp("10.0.0.1".parse().unwrap(), 40000)
                    && data_endpoint.protocol == HostProtocol::Udp
        ),
        "{out:?}"
    );
    c.handle_datagram(t0, addr(REMOTE), &connect_response(7));
    assert_eq!(
        events(&mut c),
        [
            LinkEvent::State(LinkState::Reconnecting),
            LinkEvent::State(LinkState::Connected)
        ]
    );
    assert_eq!(c.connection(), Some((7, ia("1.1.200"))));
    c
}

fn expect_tunnelling_request(c: &mut TunnelClient, sequence: u8) -> LData {
    let out = sent(c);
    match out.as_slice() {
        [
            (
                to,
                KnxIpFrame::TunnellingRequest {
                    channel_id: 7,
                    sequence: s,
                    cemi: Cemi::LData(f),
                },
            ),
        ] if *to == addr(DATA) && *s == sequence => f.clone(),
        other => panic!("expected TUNNELLING_REQUEST #{sequence}, got {other:?}"),
    }
}

#[test]
fn backoff_doubles_up_to_eight_seconds() {
    let secs: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 8, 8, 8]);
    assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
}

#[test]
fn sends_wait_for_ack_and_confirmation_in_order() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    c.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 4), 0));
    let first = expect_tunnelling_request(&mut c, 0);
    assert_eq!(first.service, LDataService::Req);
    assert_eq!(
        first.source,
        ia("1.1.200"),
        "source 0.0.0 becomes the tunnel's address"
    );
    c.handle_datagram(t0, addr(DATA), &ack(7, 0));
    assert!(
        sent(&mut c).is_empty(),
        "the next frame waits for the L_Data.con"
    );
    let mut con = first.clone();
    con.service = LDataService::Con;
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, 0, con));
    let out = sent(&mut c);
    assert!(matches!(
        out.first(),
        Some((
            _,
            KnxIpFrame::TunnellingAck {
                channel_id: 7,
                sequence: 0,
                ..
            }
        ))
    ));
    assert!(
        matches!(
            out.get(1),
            Some((_, KnxIpFrame::TunnellingRequest { sequence: 1, .. }))
        ),
        "{out:?}"
    );
    assert!(events(&mut c).is_empty(), "a .con is no bus frame");
}

#[test]
fn a_missing_confirmation_times_out_and_sending_goes_on() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    c.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 4), 1));
    expect_tunnelling_request(&mut c, 0);
    c.handle_datagram(t0, addr(DATA), &ack(7, 0));
    assert_eq!(c.poll_timeout(), Some(t0 + CON_TIMEOUT));
    c.handle_timeout(t0 + CON_TIMEOUT);
    expect_tunnelling_request(&mut c, 1);
}

#[test]
fn ack_timeout_repeats_once_then_the_connection_is_lost_and_reconnects_with_backoff() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_frame(t0, group_write(LDataService::Req, "1.1.200", (1, 2, 3), 1));
    let first = expect_tunnelling_request(&mut c, 0);
    // No ACK: after 1 s the same request (same sequence) is repeated.
    let t1 = t0 + ACK_TIMEOUT;
    assert_eq!(c.poll_timeout(), Some(t1));
    c.handle_timeout(t1);
    assert_eq!(expect_tunnelling_request(&mut c, 0), first);
    // Still no ACK: the connection is lost.
    let t2 = t1 + ACK_TIMEOUT;
    c.handle_timeout(t2);
    let out = sent(&mut c);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DisconnectRequest { channel_id: 7, .. })] if *to == addr(REMOTE)),
        "{out:?}"
    );
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Reconnecting)]);
    assert_eq!(c.connection(), None);
    // Reconnect attempts 1, 2, 4, 8, 8, 8, 8 s after each other.
    let mut t = t2;
    for (n, gap) in [1u64, 2, 4, 8, 8, 8, 8].iter().enumerate() {
        let due = c.poll_timeout().unwrap();
        assert_eq!(
            due - t,
            Duration::from_secs(*gap),
            "gap before attempt {}",
            n + 1
        );
        t = due;
        c.handle_timeout(t);
        assert!(matches!(
            sent(&mut c).as_slice(),
            [(_, KnxIpFrame::ConnectRequest { .. })]
        ));
    }
    assert_eq!(
        events(&mut c),
        [LinkEvent::State(LinkState::Down)],
        "down after failed attempts"
    );
    // The server is back: connected again, and the unacknowledged frame goes out first.
    c.handle_datagram(t, addr(REMOTE), &connect_response(8));
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Connected)]);
    let out = sent(&mut c);
    assert!(
        matches!(out.as_slice(), [(_, KnxIpFrame::TunnellingRequest { channel_id: 8, sequence: 0, cemi: Cemi::LData(f) })] if *f == first),
        "{out:?}"
    );
}

#[test]
fn a_negative_ack_is_repeated() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_frame(t0, group_write(LDataService::Req, "1.1.200", (1, 2, 3), 1));
    expect_tunnelling_request(&mut c, 0);
    let nack = bytes(&KnxIpFrame::TunnellingAck {
        channel_id: 7,
        sequence: 0,
        status: Status::Error,
    });
    c.handle_datagram(t0, addr(DATA), &nack);
    expect_tunnelling_request(&mut c, 0);
    c.handle_datagram(t0, addr(DATA), &nack);
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Reconnecting)]);
}

#[test]
fn heartbeat_every_minute_and_three_missed_responses_lose_the_connection() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    let t1 = t0 + HEARTBEAT_INTERVAL;
    assert_eq!(c.poll_timeout(), Some(t1));
    c.handle_timeout(t1);
    let out = sent(&mut c);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::ConnectionStateRequest { channel_id: 7, .. })] if *to == addr(REMOTE))
    );
    let ok = bytes(&KnxIpFrame::ConnectionStateResponse {
        channel_id: 7,
        status: Status::NoError,
    });
    c.handle_datagram(t1, addr(REMOTE), &ok);
    let t2 = t1 + HEARTBEAT_INTERVAL;
    assert_eq!(c.poll_timeout(), Some(t2));
    // Three requests without answer, 10 s apart; then lost.
    let mut t = t2;
    for _ in 0..HEARTBEAT_TRIES {
        c.handle_timeout(t);
        assert!(matches!(
            sent(&mut c).as_slice(),
            [(_, KnxIpFrame::ConnectionStateRequest { .. })]
        ));
        assert!(events(&mut c).is_empty());
        t += HEARTBEAT_TIMEOUT;
        assert_eq!(c.poll_timeout(), Some(t));
    }
    c.handle_timeout(t);
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Reconnecting)]);
}

#[test]
fn heartbeat_error_status_loses_the_connection() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_timeout(t0 + HEARTBEAT_INTERVAL);
    sent(&mut c);
    let bad = bytes(&KnxIpFrame::ConnectionStateResponse {
        channel_id: 7,
        status: Status::ConnectionId,
    });
    c.handle_datagram(t0 + HEARTBEAT_INTERVAL, addr(REMOTE), &bad);
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Reconnecting)]);
}

#[test]
fn duplicates_are_acknowledged_but_delivered_once() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    let ind = group_write(LDataService::Ind, "1.1.5", (1, 2, 3), 1);
    let acks = |c: &mut TunnelClient| -> Vec<u8> {
        sent(c)
            .into_iter()
            .filter_map(|(_, f)| match f {
                KnxIpFrame::TunnellingAck { sequence, .. } => Some(sequence),
                _ => None,
            })
            .collect()
    };
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, 0, ind.clone()));
    assert_eq!(acks(&mut c), [0]);
    assert_eq!(events(&mut c), [LinkEvent::Frame(ind.clone())]);
    // The server repeats (our ACK was lost): ACK again, no second delivery.
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, 0, ind.clone()));
    assert_eq!(acks(&mut c), [0]);
    assert!(events(&mut c).is_empty());
    // Out of sequence: dropped without ACK.
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, 5, ind.clone()));
    assert!(acks(&mut c).is_empty());
    assert!(events(&mut c).is_empty());
    // Another (stale) channel: dropped, and that channel is released.
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(9, 1, ind.clone()));
    let out = sent(&mut c);
    assert!(
        matches!(out.as_slice(), [(to, KnxIpFrame::DisconnectRequest { channel_id: 9, .. })] if *to == addr(REMOTE)),
        "{out:?}"
    );
    assert!(events(&mut c).is_empty());
    // The next one is delivered.
    c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, 1, ind.clone()));
    assert_eq!(acks(&mut c), [1]);
    assert_eq!(events(&mut c), [LinkEvent::Frame(ind)]);
}

#[test]
fn sequence_numbers_wrap_after_255() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    let ind = group_write(LDataService::Ind, "1.1.5", (1, 2, 3), 1);
    for n in 0..=300u16 {
        let seq = u8::try_from(n % 256).unwrap();
        c.handle_datagram(t0, addr(DATA), &tunnelling_request(7, seq, ind.clone()));
        assert_eq!(events(&mut c).len(), 1, "frame {n}");
        sent(&mut c);
    }
}

#[test]
fn server_disconnect_is_answered_and_reconnects() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    let request = bytes(&KnxIpFrame::DisconnectRequest {
        channel_id: 7,
        control_endpoint: Hpai::udp("10.0.0.2".parse().unwrap(), 3671),
    });
    c.handle_datagram(t0, addr(REMOTE), &request);
    let out = sent(&mut c);
    assert!(out.iter().any(|(to, f)| *to == addr(REMOTE)
        && matches!(
            f,
            KnxIpFrame::DisconnectResponse {
                channel_id: 7,
                status: Status::NoError
            }
        )));
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Reconnecting)]);
    assert_eq!(c.poll_timeout(), Some(t0 + backoff(0)));
}

#[test]
fn close_disconnects_and_waits_for_the_response() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.close(t0);
    let out = sent(&mut c);
    assert!(matches!(
        out.as_slice(),
        [(_, KnxIpFrame::DisconnectRequest { channel_id: 7, .. })]
    ));
    assert_eq!(events(&mut c), [LinkEvent::State(LinkState::Down)]);
    assert!(!c.is_closed());
    let response = bytes(&KnxIpFrame::DisconnectResponse {
        channel_id: 7,
        status: Status::NoError,
    });
    c.handle_datagram(t0, addr(REMOTE), &response);
    assert!(c.is_closed());
    // Without a response it closes after the timeout.
    let mut c = connected(t0);
    c.close(t0);
    c.handle_timeout(t0 + DISCONNECT_TIMEOUT);
    assert!(c.is_closed());
}

#[test]
fn refused_connections_and_garbage_change_nothing() {
    let t0 = Instant::now();
    let mut c = client(t0);
    c.handle_timeout(t0);
    sent(&mut c);
    let refused = bytes(&KnxIpFrame::ConnectResponse {
        channel_id: 0,
        status: Status::NoMoreConnections,
        endpoint: None,
    });
    c.handle_datagram(t0, addr(REMOTE), &refused);
    for garbage in [
        &b""[..],
        &[0x06, 0x10, 0x04],
        &[0x06, 0x10, 0x02, 0x06, 0x00, 0x50, 1, 2],
    ] {
        c.handle_datagram(t0, addr(REMOTE), garbage);
    }
    assert_eq!(c.connection(), None);
    assert!(sent(&mut c).is_empty());
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + backoff(1)),
        "the next attempt as planned"
    );
}

#[test]
fn a_late_connect_response_releases_its_channel() {
    let t0 = Instant::now();
    let mut c = connected(t0);
    c.handle_datagram(t0, addr(REMOTE), &connect_response(9));
    let out = sent(&mut c);
    assert!(matches!(
        out.as_slice(),
        [(_, KnxIpFrame::DisconnectRequest { channel_id: 9, .. })]
    ));
    assert_eq!(c.connection(), Some((7, ia("1.1.200"))));
}

#[test]
fn frames_queue_while_connecting_and_the_queue_is_bounded() {
    let t0 = Instant::now();
    let mut c = client(t0);
    for n in 0..(MAX_QUEUE + 3) {
        assert_eq!(c.wants_frames(), n < MAX_QUEUE);
        c.handle_frame(
            t0,
            group_write(
                LDataService::Req,
                "0.0.0",
                (1, 2, 3),
                u8::try_from(n % 64).unwrap(),
            ),
        );
    }
    c.handle_timeout(t0);
    sent(&mut c);
    c.handle_datagram(t0, addr(REMOTE), &connect_response(7));
    let f = expect_tunnelling_request(&mut c, 0);
    // The oldest three were dropped.
    assert_eq!(
        f.tpdu,
        group_write(LDataService::Req, "0.0.0", (1, 2, 3), 3).tpdu
    );
}

#[test]
fn without_a_local_address_the_client_asks_for_route_back() {
    let t0 = Instant::now();
    let SocketAddr::V4(remote) = addr(REMOTE) else {
        unreachable!()
    };
    let mut c = TunnelClient::new(t0, remote, "0.0.0.0:40000".parse().unwrap());
    c.handle_timeout(t0);
    let out = sent(&mut c);
    assert!(matches!(
        out.as_slice(),
        [(_, KnxIpFrame::ConnectRequest { control_endpoint, data_endpoint, .. })]
            if *control_endpoint == Hpai::unspecified(HostProtocol::Udp)
                && *data_endpoint == Hpai::unspecified(HostProtocol::Udp)
    ));
}
