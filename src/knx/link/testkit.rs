//! Helpers for the unit tests of the link machines: frames, datagrams and draining.

use std::net::SocketAddr;

use super::{LinkEvent, Protocol};
use crate::knx::address::{GroupAddress, IndividualAddress};
use crate::knx::wire::apdu::{Apdu, Payload, Tpdu};
use crate::knx::wire::cemi::{Cemi, Destination, LData, LDataService};
use crate::knx::wire::knxip::KnxIpFrame;

pub(crate) fn ia(text: &str) -> IndividualAddress {
    text.parse().unwrap()
}

pub(crate) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A GroupValue_Write of a short (6-bit) value.
pub(crate) fn group_write(
    service: LDataService,
    source: &str,
    ga: (u8, u8, u8),
    value: u8,
) -> LData {
    LData::new(
        service,
        ia(source),
        Destination::Group(GroupAddress::three_level(ga.0, ga.1, ga.2).unwrap()),
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(value))),
    )
}

pub(crate) fn bytes(frame: &KnxIpFrame) -> Vec<u8> {
    frame.to_bytes().unwrap()
}

pub(crate) fn tunnelling_request(channel: u8, sequence: u8, frame: LData) -> Vec<u8> {
    bytes(&KnxIpFrame::TunnellingRequest {
        channel_id: channel,
        sequence,
        cemi: Cemi::LData(frame),
    })
}

/// Every datagram the machine wants sent, decoded.
pub(crate) fn sent(machine: &mut impl Protocol) -> Vec<(SocketAddr, KnxIpFrame)> {
    std::iter::from_fn(|| machine.poll_transmit())
        .map(|t| (t.destination, KnxIpFrame::parse(&t.payload).unwrap()))
        .collect()
}

pub(crate) fn events(machine: &mut impl Protocol) -> Vec<LinkEvent> {
    std::iter::from_fn(|| machine.poll_event()).collect()
}
