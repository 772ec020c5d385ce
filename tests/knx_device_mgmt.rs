//! Issue 14 point 5 against the gateway binary: a raw UDP client plays ETS and opens a
//! KNXnet/IP device-management connection (CRI type 0x03, KNX 03.08.03) to the built-in
//! tunnelling server, reads the device object's properties with cEMI M_PropRead.req
//! (03.06.03 §4.1.7) in DEVICE_CONFIGURATION_REQUESTs, acknowledges the server's answers,
//! gets a negative confirmation for a property that does not exist and disconnects.
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

use knx_echarge::knx::wire::cemi::{Cemi, MessageCode, PropFrame};
use knx_echarge::knx::wire::knxip::{Crd, Cri, Hpai, KnxIpFrame, Status};

mod support;
use support::KillOnDrop;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    channel: u8,
    sequence: u8,
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

/// The next frame within `within`, if any.
fn receive(s: &UdpSocket, within: Duration) -> Option<KnxIpFrame> {
    let end = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(KnxIpFrame::parse(&buf[..n]).unwrap());
        }
    }
    None
}

impl Client {
    fn connect(server: SocketAddr) -> Option<Self> {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        send(
            &socket,
            server,
            &KnxIpFrame::ConnectRequest {
                control_endpoint: hpai(&socket),
                data_endpoint: hpai(&socket),
                cri: Cri::DeviceManagement,
            },
        );
        match receive(&socket, Duration::from_millis(500))? {
            KnxIpFrame::ConnectResponse {
                channel_id,
                status: Status::NoError,
                endpoint: Some((_, Crd::DeviceManagement)),
            } => Some(Self {
                socket,
                server,
                channel: channel_id,
                sequence: 0,
            }),
            other => panic!("device-management connection refused: {other:?}"),
        }
    }

    /// Sends an M_PropRead.req of the device object and returns the M_PropRead.con.
    fn read(&mut self, property_id: u8) -> PropFrame {
        let request = PropFrame {
            object_type: 0,
            instance: 1,
            property_id,
            count: 1,
            start_index: 1,
            data: Vec::new(),
        };
        let sequence = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        send(
            &self.socket,
            self.server,
            &KnxIpFrame::DeviceConfigurationRequest {
                channel_id: self.channel,
                sequence,
                cemi: Cemi::Other {
                    code: MessageCode::MPropReadReq,
                    body: request.to_body().unwrap(),
                },
            },
        );
        let mut acked = false;
        let mut answer = None;
        while !(acked && answer.is_some()) {
            match receive(&self.socket, Duration::from_secs(2)) {
                Some(KnxIpFrame::DeviceConfigurationAck {
                    channel_id,
                    sequence: s,
                    status: Status::NoError,
                }) if channel_id == self.channel && s == sequence => acked = true,
                Some(KnxIpFrame::DeviceConfigurationRequest {
                    channel_id,
                    sequence: s,
                    cemi: Cemi::Other { code, body },
                }) if channel_id == self.channel => {
                    assert_eq!(code, MessageCode::MPropReadCon);
                    send(
                        &self.socket,
                        self.server,
                        &KnxIpFrame::DeviceConfigurationAck {
                            channel_id,
                            sequence: s,
                            status: Status::NoError,
                        },
                    );
                    answer = Some(PropFrame::parse(&body).unwrap());
                }
                other => panic!("PID {property_id}: {other:?}"),
            }
        }
        answer.unwrap()
    }

    fn disconnect(self) {
        send(
            &self.socket,
            self.server,
            &KnxIpFrame::DisconnectRequest {
                channel_id: self.channel,
                control_endpoint: hpai(&self.socket),
            },
        );
        assert!(matches!(
            receive(&self.socket, Duration::from_secs(2)),
            Some(KnxIpFrame::DisconnectResponse {
                status: Status::NoError,
                ..
            })
        ));
    }
}

#[test]
fn ets_reads_the_device_object_over_a_device_management_connection() {
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
    // The manufacturer id of `etsdb/parameters.toml` (0x00FA) once the gateway has told the
    // link its identity.
    let started = Instant::now();
    let mut client = loop {
        if let Some(mut client) = Client::connect(server) {
            if client.read(12).data == [0x00, 0xFA] {
                break client;
            }
            client.disconnect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no device-management answers with the gateway's identity"
        );
        std::thread::sleep(Duration::from_millis(200));
    };

    // Serial number (PID 11): 6 bytes, starting with the manufacturer id.
    let serial = client.read(11);
    assert_eq!((serial.count, serial.data.len()), (1, 6));
    assert_eq!(&serial.data[..2], &[0x00, 0xFA]);
    // Programming mode (PID 54) is off after start.
    assert_eq!(client.read(54).data, [0]);
    // Max APDU length (PID 56) and device descriptor (PID 83, mask version 07B0).
    assert_eq!(client.read(56).data, [0, 15]);
    assert_eq!(client.read(83).data, [0x07, 0xB0]);
    // Order info (PID 15): 10 bytes.
    assert_eq!(client.read(15).data.len(), 10);
    // A property the device object does not have: negative .con, error 0x07 (void DP).
    let none = client.read(200);
    assert_eq!((none.count, none.data.as_slice()), (0, &[0x07u8][..]));
    client.disconnect();
}
