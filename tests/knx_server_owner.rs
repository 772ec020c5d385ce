//! Issue 17 point 4 against the gateway binary: its KNXnet/IP tunnelling server binds every
//! request to the tunnel's owner and answers only whoever asked. A second socket on the same
//! host plays the attacker: it cannot close someone else's tunnel, take its slot or inject a
//! frame into it, and a SEARCH naming a third address produces nothing there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use knx_echarge::knx::GroupAddress;
use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
use knx_echarge::knx::wire::cemi::{Cemi, Destination, LData, LDataService};
use knx_echarge::knx::wire::knxip::{Crd, Cri, Hpai, KnxIpFrame, Status, TunnelLayer};

mod support;
use support::KillOnDrop;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn socket(ip: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddrV4::new(ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn hpai(s: &UdpSocket) -> Hpai {
    let SocketAddr::V4(a) = s.local_addr().unwrap() else {
        unreachable!()
    };
    Hpai::udp(*a.ip(), a.port())
}

fn send(s: &UdpSocket, to: SocketAddr, frame: &KnxIpFrame) {
    s.send_to(&frame.to_bytes().unwrap(), to).unwrap();
}

/// Frames `s` receives within `within` (all of them).
fn receive(s: &UdpSocket, within: Duration) -> Vec<KnxIpFrame> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            out.push(KnxIpFrame::parse(&buf[..n]).unwrap());
        }
    }
    out
}

fn connect(s: &UdpSocket, server: SocketAddr) -> u8 {
    send(
        s,
        server,
        &KnxIpFrame::ConnectRequest {
            control_endpoint: hpai(s),
            data_endpoint: hpai(s),
            cri: Cri::Tunnel {
                layer: TunnelLayer::LinkLayer,
                individual_address: None,
            },
        },
    );
    for f in receive(s, Duration::from_secs(2)) {
        if let KnxIpFrame::ConnectResponse {
            channel_id,
            status: Status::NoError,
            endpoint: Some((_, Crd::Tunnel { .. })),
        } = f
        {
            return channel_id;
        }
    }
    panic!("no tunnel");
}

fn group_write(dest: (u8, u8, u8)) -> LData {
    LData::new(
        LDataService::Req,
        "0.0.0".parse().unwrap(),
        Destination::Group(GroupAddress::three_level(dest.0, dest.1, dest.2).unwrap()),
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))),
    )
}

#[test]
fn requests_are_bound_to_the_tunnels_owner_and_answers_to_the_requester() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let data = tempfile::tempdir().unwrap();
    let _gateway = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_knx-echarge"))
            .args(["run", "--config"])
            .arg(Path::new(CRATE).join("examples/single-charger.toml"))
            .args(["--no-chargers", "--knx", &format!("server://{server}")])
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the server answers.
    let owner = socket(Ipv4Addr::LOCALHOST);
    let started = Instant::now();
    loop {
        send(
            &owner,
            server,
            &KnxIpFrame::DescriptionRequest {
                control_endpoint: hpai(&owner),
            },
        );
        if !receive(&owner, Duration::from_millis(300)).is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "server silent");
    }

    let channel = connect(&owner, server);
    let witness = socket(Ipv4Addr::LOCALHOST);
    let witness_channel = connect(&witness, server);
    let intruder = socket(Ipv4Addr::LOCALHOST);

    // 1. DISCONNECT of the owner's channel from another port: no answer, the tunnel stays.
    send(
        &intruder,
        server,
        &KnxIpFrame::DisconnectRequest {
            channel_id: channel,
            control_endpoint: hpai(&intruder),
        },
    );
    assert!(receive(&intruder, Duration::from_millis(500)).is_empty());
    send(
        &owner,
        server,
        &KnxIpFrame::ConnectionStateRequest {
            channel_id: channel,
            control_endpoint: hpai(&owner),
        },
    );
    assert!(
        receive(&owner, Duration::from_millis(500)).iter().any(|f| matches!(
            f,
            KnxIpFrame::ConnectionStateResponse { channel_id, status: Status::NoError } if *channel_id == channel
        )),
        "the owner's tunnel is still open"
    );
    // 2. A frame injected into the owner's channel: not acknowledged, not on the line (the
    //    witness tunnel would see it as L_Data.ind).
    let _ = receive(&witness, Duration::from_millis(200));
    send(
        &intruder,
        server,
        &KnxIpFrame::TunnellingRequest {
            channel_id: channel,
            sequence: 0,
            cemi: Cemi::LData(group_write((7, 7, 7))),
        },
    );
    assert!(receive(&intruder, Duration::from_millis(500)).is_empty());
    let seen = receive(&witness, Duration::from_millis(500));
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, KnxIpFrame::TunnellingRequest { .. })),
        "{seen:?}"
    );
    // The owner's own frame does reach the witness.
    send(
        &owner,
        server,
        &KnxIpFrame::TunnellingRequest {
            channel_id: channel,
            sequence: 0,
            cemi: Cemi::LData(group_write((7, 7, 7))),
        },
    );
    let seen = receive(&witness, Duration::from_millis(800));
    assert!(
        seen.iter().any(|f| matches!(f, KnxIpFrame::TunnellingRequest { channel_id, .. } if *channel_id == witness_channel)),
        "{seen:?}"
    );

    // 3. A SEARCH naming a third address: nothing is sent there; the requester's own is answered.
    let third = socket(Ipv4Addr::new(127, 0, 0, 2));
    send(
        &intruder,
        server,
        &KnxIpFrame::SearchRequest {
            discovery_endpoint: hpai(&third),
        },
    );
    assert!(receive(&third, Duration::from_millis(800)).is_empty());
    send(
        &intruder,
        server,
        &KnxIpFrame::SearchRequest {
            discovery_endpoint: hpai(&intruder),
        },
    );
    assert!(
        receive(&intruder, Duration::from_millis(800))
            .iter()
            .any(|f| matches!(f, KnxIpFrame::SearchResponse { .. }))
    );
}
