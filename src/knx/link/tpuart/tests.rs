use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::knx::link::testkit::{group_write, ia};
use crate::knx::wire::apdu::{Apdu, Payload, Tpdu};
use crate::knx::wire::cemi::Destination;

const OWN: &str = "1.1.10";
const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    MS * u32::try_from(n).unwrap()
}

fn out(link: &mut TpUartLink) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| link.poll_write()).collect()
}

fn events(link: &mut TpUartLink) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn frames(link: &mut TpUartLink) -> Vec<LData> {
    events(link)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::Frame(f) => Some(f),
            LinkEvent::State(_) | LinkEvent::PropertyWrite { .. } => None,
        })
        .collect()
}

/// A link that went through reset, U_SetAddress and U_State at `t0`.
fn online(t0: Instant, options: TpUartOptions) -> TpUartLink {
    let set_address = options.set_address;
    let mut link = TpUartLink::new(t0, ia(OWN), options);
    assert_eq!(out(&mut link), [vec![0x01]]);
    assert_eq!(link.poll_timeout(), Some(t0 + RESET_TIMEOUT));
    link.handle_bytes(t0, &[0x03]);
    let setup = out(&mut link);
    if set_address {
        assert_eq!(setup, [vec![0x28, 0x11, 0x0A], vec![0x02]]);
    } else {
        assert_eq!(setup, [vec![0x02]]);
    }
    link.handle_bytes(t0, &[0x07]);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::State(LinkState::Reconnecting),
            LinkEvent::State(LinkState::Connected)
        ]
    );
    link
}

/// A TP frame from 1.1.20 writing the 6-bit `value` to `ga`.
fn tp_group_write(ga: (u8, u8, u8), value: u8) -> TpFrame {
    let mut f = TpFrame::from_ldata(&group_write(LDataService::Ind, "1.1.20", ga, value));
    f.repeated = false;
    f
}

fn bytes(frame: &TpFrame) -> Vec<u8> {
    frame.to_bytes().unwrap()
}

/// The TP frame inside a `80|i b … 40|i cs` transmit request.
fn decode_transmit(enc: &[u8]) -> TpFrame {
    assert_eq!(enc.len() % 2, 0);
    let mut frame = Vec::new();
    for (i, pair) in enc.chunks(2).enumerate() {
        let last = i == enc.len() / 2 - 1;
        let index = u8::try_from(i).unwrap() & 0x3F;
        assert_eq!(pair[0], if last { 0x40 | index } else { 0x80 | index });
        frame.push(pair[1]);
    }
    TpFrame::parse(&frame).unwrap()
}

#[test]
fn handshake_resets_sets_the_address_and_asks_the_state() {
    let t0 = Instant::now();
    let link = online(t0, TpUartOptions::default());
    assert_eq!(link.state(), Some(LinkState::Connected));
    // Next: the keep-alive.
    assert_eq!(link.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    // Without U_SetAddress the set-up is U_State.req alone.
    online(
        t0,
        TpUartOptions {
            set_address: false,
            ..TpUartOptions::default()
        },
    );
}

#[test]
fn state_indication_with_error_bits_still_brings_the_link_up() {
    let t0 = Instant::now();
    let mut link = TpUartLink::new(t0, ia(OWN), TpUartOptions::default());
    out(&mut link);
    link.handle_bytes(t0, &[0x03]);
    out(&mut link);
    link.handle_bytes(t0, &[0x2F]); // transmit error + temperature warning
    assert_eq!(link.state(), Some(LinkState::Connected));
}

#[test]
fn unanswered_resets_report_down_and_keep_trying() {
    let t0 = Instant::now();
    let mut link = TpUartLink::new(t0, ia(OWN), TpUartOptions::default());
    assert_eq!(out(&mut link), [vec![0x01]]);
    let mut t = t0;
    for _ in 1..RESET_ATTEMPTS {
        t += RESET_TIMEOUT;
        link.handle_timeout(t);
        assert_eq!(out(&mut link), [vec![0x01]]);
        assert_eq!(link.state(), Some(LinkState::Reconnecting));
    }
    t += RESET_TIMEOUT;
    link.handle_timeout(t);
    assert_eq!(out(&mut link), [vec![0x01]]);
    assert_eq!(link.state(), Some(LinkState::Down));
    assert_eq!(link.poll_timeout(), Some(t + DOWN_RETRY));
    // Frames wait while the link is down.
    link.handle_frame(t, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    assert!(out(&mut link).is_empty());
    t += DOWN_RETRY;
    link.handle_timeout(t);
    assert_eq!(out(&mut link), [vec![0x01]]);
    // The chip answers at last.
    link.handle_bytes(t, &[0x03]);
    assert_eq!(link.state(), Some(LinkState::Reconnecting));
    assert_eq!(out(&mut link), [vec![0x28, 0x11, 0x0A], vec![0x02]]);
    link.handle_bytes(t, &[0x07]);
    assert_eq!(link.state(), Some(LinkState::Connected));
    // … and the queued frame goes out.
    let sent = out(&mut link);
    assert_eq!(sent.len(), 1);
    assert_eq!(decode_transmit(&sent[0]).source, ia(OWN));
}

#[test]
fn unanswered_state_request_resets_again() {
    let t0 = Instant::now();
    let mut link = TpUartLink::new(t0, ia(OWN), TpUartOptions::default());
    out(&mut link);
    link.handle_bytes(t0, &[0x03]);
    out(&mut link);
    link.handle_timeout(t0 + STATE_TIMEOUT);
    assert_eq!(out(&mut link), [vec![0x01]]);
    assert_eq!(link.state(), Some(LinkState::Reconnecting));
}

#[test]
fn send_with_positive_confirmation() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let sent = out(&mut link);
    // The TP1 golden vector: 1.1.10 writes "on" to 1/2/3, low priority.
    assert_eq!(
        sent,
        [vec![
            0x80, 0xBC, 0x81, 0x11, 0x82, 0x0A, 0x83, 0x0A, 0x84, 0x03, 0x85, 0xE1, 0x86, 0x00,
            0x87, 0x81, 0x48, 0x31
        ]]
    );
    assert_eq!(link.poll_timeout(), Some(t0 + CON_TIMEOUT));
    // The next frame waits for the confirmation.
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 4), 0));
    assert!(out(&mut link).is_empty());
    link.handle_bytes(t0 + ms(30), &[0x8B]);
    let next = out(&mut link);
    assert_eq!(next.len(), 1);
    assert_eq!(
        decode_transmit(&next[0]).destination,
        Destination::Group(GroupAddress::three_level(1, 2, 4).unwrap())
    );
    link.handle_bytes(t0 + ms(60), &[0x8B]);
    assert_eq!(link.stats().confirmed, 2);
    assert_eq!(link.queued(), 0);
    assert!(events(&mut link).is_empty());
}

#[test]
fn negative_confirmation_is_repeated_once_as_a_repetition_then_dropped() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let first = decode_transmit(&out(&mut link)[0]);
    assert!(!first.repeated);
    link.handle_bytes(t0 + ms(100), &[0x0B]);
    assert!(out(&mut link).is_empty());
    assert_eq!(link.poll_timeout(), Some(t0 + ms(100) + REPEAT_PAUSE));
    link.handle_timeout(t0 + ms(100) + REPEAT_PAUSE);
    let again = decode_transmit(&out(&mut link)[0]);
    assert!(
        again.repeated,
        "the host repetition carries the repeat flag"
    );
    assert_eq!(again.tpdu, first.tpdu);
    link.handle_bytes(t0 + ms(400), &[0x0B]);
    assert_eq!(link.queued(), 0);
    assert_eq!(link.stats().dropped, 1);
    assert_eq!(link.stats().negative, 2);
    // A repeat succeeding counts as confirmed.
    link.handle_frame(
        t0 + ms(500),
        group_write(LDataService::Req, "0.0.0", (1, 2, 3), 0),
    );
    out(&mut link);
    link.handle_bytes(t0 + ms(510), &[0x0B]);
    link.handle_timeout(t0 + ms(510) + REPEAT_PAUSE);
    assert_eq!(out(&mut link).len(), 1);
    link.handle_bytes(t0 + ms(700), &[0x8B]);
    assert_eq!(link.stats().confirmed, 1);
    assert_eq!(link.queued(), 0);
}

#[test]
fn no_repeats_when_the_host_is_told_so() {
    let t0 = Instant::now();
    let mut link = online(
        t0,
        TpUartOptions {
            host_repeats: 0,
            ..TpUartOptions::default()
        },
    );
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    out(&mut link);
    link.handle_bytes(t0, &[0x0B]);
    assert_eq!(link.queued(), 0);
    assert_eq!(link.stats().dropped, 1);
}

#[test]
fn missing_confirmations_repeat_then_reset_the_chip() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    assert_eq!(out(&mut link).len(), 1);
    let mut t = t0 + CON_TIMEOUT;
    link.handle_timeout(t);
    t += REPEAT_PAUSE;
    link.handle_timeout(t);
    assert_eq!(out(&mut link).len(), 1, "repeated after the first timeout");
    t += CON_TIMEOUT;
    link.handle_timeout(t);
    assert_eq!(link.stats().dropped, 1);
    link.handle_frame(t, group_write(LDataService::Req, "0.0.0", (1, 2, 4), 1));
    assert_eq!(out(&mut link).len(), 1);
    t += CON_TIMEOUT;
    link.handle_timeout(t);
    // Third timeout in a row: the chip is reset, the frame waits for it.
    assert_eq!(out(&mut link), [vec![0x01]]);
    assert_eq!(link.state(), Some(LinkState::Reconnecting));
    assert_eq!(link.queued(), 1);
    link.handle_bytes(t, &[0x03]);
    out(&mut link);
    link.handle_bytes(t, &[0x07]);
    let sent = out(&mut link);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        decode_transmit(&sent[0]).destination,
        Destination::Group(GroupAddress::three_level(1, 2, 4).unwrap())
    );
}

#[test]
fn higher_priorities_go_first() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let with_prio = |ga, priority| {
        let mut f = group_write(LDataService::Req, "0.0.0", (1, 2, ga), 1);
        f.priority = priority;
        f
    };
    link.handle_frame(t0, with_prio(1, Priority::Low));
    out(&mut link);
    link.handle_frame(t0, with_prio(2, Priority::Low));
    link.handle_frame(t0, with_prio(3, Priority::Normal));
    link.handle_frame(t0, with_prio(4, Priority::Urgent));
    link.handle_frame(t0, with_prio(5, Priority::System));
    let mut order = Vec::new();
    for _ in 0..4 {
        link.handle_bytes(t0, &[0x8B]);
        let f = decode_transmit(&out(&mut link)[0]);
        order.push((f.destination.raw() & 0xFF, f.priority));
    }
    assert_eq!(
        order,
        [
            (5, Priority::System),
            (4, Priority::Urgent),
            (3, Priority::Normal),
            (2, Priority::Low)
        ]
    );
}

#[test]
fn group_frames_are_acknowledged_right_after_the_header() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let frame = bytes(&tp_group_write((1, 2, 3), 1));
    for (i, b) in frame.iter().enumerate() {
        link.handle_bytes(t0 + ms(u64::try_from(i).unwrap()), &[*b]);
        let sent = out(&mut link);
        if i == 5 {
            assert_eq!(sent, [vec![0x11]], "U_AckInformation(addressed) after NPCI");
        } else {
            assert!(sent.is_empty(), "byte {i}: {sent:?}");
        }
    }
    let got = frames(&mut link);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].service, LDataService::Ind);
    assert_eq!(got[0].source, ia("1.1.20"));
    assert_eq!(
        got[0].tpdu,
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1)))
    );
}

#[test]
fn only_listened_groups_broadcast_and_our_address_are_acknowledged() {
    let t0 = Instant::now();
    let listened = GroupAddress::three_level(1, 2, 3).unwrap();
    let options = TpUartOptions {
        ack_groups: AckGroups::Only(HashSet::from([listened])),
        ..TpUartOptions::default()
    };
    let mut link = online(t0, options.clone());
    link.handle_bytes(t0, &bytes(&tp_group_write((1, 2, 3), 1)));
    assert_eq!(out(&mut link), [vec![0x11]]);
    link.handle_bytes(t0, &bytes(&tp_group_write((1, 2, 4), 1)));
    assert!(out(&mut link).is_empty(), "not ours: no U_AckInformation");
    link.handle_bytes(t0, &bytes(&tp_group_write((0, 0, 0), 1)));
    assert_eq!(out(&mut link), [vec![0x11]], "broadcast");
    // Both frames to groups we do not listen to are still delivered.
    assert_eq!(frames(&mut link).len(), 3);

    let mut to_us = tp_group_write((0, 0, 0), 1);
    to_us.destination = Destination::Individual(ia(OWN));
    link.handle_bytes(t0, &bytes(&to_us));
    assert!(
        out(&mut link).is_empty(),
        "the chip acknowledges our address itself (U_SetAddress)"
    );
    let mut host_acks = online(
        t0,
        TpUartOptions {
            set_address: false,
            ..options
        },
    );
    host_acks.handle_bytes(t0, &bytes(&to_us));
    assert_eq!(out(&mut host_acks), [vec![0x11]]);
    let mut to_other = to_us.clone();
    to_other.destination = Destination::Individual(ia("1.1.11"));
    host_acks.handle_bytes(t0, &bytes(&to_other));
    assert!(out(&mut host_acks).is_empty());
}

#[test]
fn extended_frames_in_and_out() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let long = Tpdu::Data(Apdu::GroupValueWrite(Payload::Long((0..20).collect())));
    // Out: a TPDU over 16 bytes goes out as an extended frame.
    let mut req = group_write(LDataService::Req, "0.0.0", (1, 2, 3), 0);
    req.tpdu = long.clone();
    link.handle_frame(t0, req);
    let sent = decode_transmit(&out(&mut link)[0]);
    assert_eq!(sent.frame_format, FrameFormat::Extended);
    assert_eq!(sent.tpdu, long);
    link.handle_bytes(t0, &[0x8B]);
    // In: acknowledged after the 7th byte (CTRLE carries the address type).
    let mut frame = tp_group_write((1, 2, 3), 0);
    frame.frame_format = FrameFormat::Extended;
    frame.tpdu = long.clone();
    let raw = bytes(&frame);
    link.handle_bytes(t0, &raw[..6]);
    assert!(out(&mut link).is_empty());
    link.handle_bytes(t0, &raw[6..7]);
    assert_eq!(out(&mut link), [vec![0x11]]);
    link.handle_bytes(t0, &raw[7..]);
    let got = frames(&mut link);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].frame_format, FrameFormat::Extended);
    assert_eq!(got[0].tpdu, long);
}

#[test]
fn frames_over_64_bytes_are_refused_not_sent() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let mut req = group_write(LDataService::Req, "0.0.0", (1, 2, 3), 0);
    req.tpdu = Tpdu::Data(Apdu::GroupValueWrite(Payload::Long(vec![0; 70])));
    link.handle_frame(t0, req);
    assert!(out(&mut link).is_empty());
    assert_eq!(link.stats().dropped, 1);
    // The next one still goes.
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 0));
    assert_eq!(out(&mut link).len(), 1);
}

#[test]
fn garbage_before_a_frame_is_skipped() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let mut stream = vec![0x55, 0x8B, 0xF0, 0xCC, 0xFF, 0x0B];
    stream.extend(bytes(&tp_group_write((1, 2, 3), 1)));
    link.handle_bytes(t0, &stream);
    assert_eq!(frames(&mut link).len(), 1);
    assert_eq!(link.state(), Some(LinkState::Connected));
}

#[test]
fn a_bad_checksum_is_dropped_and_the_next_frame_found() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let mut bad = bytes(&tp_group_write((1, 2, 3), 1));
    *bad.last_mut().unwrap() ^= 0xFF;
    let good = bytes(&tp_group_write((1, 2, 4), 0));
    link.handle_bytes(t0, &[bad.clone(), good.clone()].concat());
    // Inside the broken frame, 0x14 (the source's low byte) looks like the start of an
    // extended frame of 208 bytes, which swallows the good one until the bytes stop.
    assert!(frames(&mut link).is_empty());
    link.handle_timeout(t0 + ms(100));
    let got = frames(&mut link);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].destination.raw(), 0x0A04);
    assert!(link.stats().skipped_bytes > 0);
    // Without such a look-alike the next frame is found at once.
    let mut bad = bytes(&tp_group_write((1, 2, 3), 1));
    bad[2] = 0x20;
    let fixed = u8::try_from(bad.len() - 1).unwrap();
    bad[usize::from(fixed)] = crate::knx::wire::tpuart::checksum(&bad[..usize::from(fixed)]) ^ 0x01;
    link.handle_bytes(t0 + ms(200), &[bad, good].concat());
    assert_eq!(frames(&mut link).len(), 1);
}

#[test]
fn a_truncated_frame_is_given_up_after_the_inter_byte_timeout() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let first = bytes(&tp_group_write((1, 2, 3), 1));
    link.handle_bytes(t0, &first[..5]);
    assert_eq!(link.poll_timeout(), Some(t0 + ms(100)));
    // A new frame after a pause: the stump is dropped, the frame delivered.
    let second = bytes(&tp_group_write((1, 2, 4), 0));
    link.handle_bytes(t0 + ms(150), &second);
    let got = frames(&mut link);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].destination.raw(), 0x0A04);

    // The same, but the next frame follows at once: it is found after the timeout.
    link.handle_bytes(t0 + ms(200), &first[..5]);
    link.handle_bytes(t0 + ms(201), &second);
    assert!(frames(&mut link).is_empty());
    link.handle_timeout(t0 + ms(301));
    let got = frames(&mut link);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].destination.raw(), 0x0A04);
}

#[test]
fn chip_reset_in_the_middle_of_a_frame() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 9), 1));
    out(&mut link);
    let frame = bytes(&tp_group_write((1, 2, 3), 1));
    link.handle_bytes(t0, &frame[..4]);
    // The chip restarts: its U_Reset.ind lands inside the frame.
    link.handle_bytes(t0 + ms(1), &[0x03]);
    link.handle_timeout(t0 + ms(101));
    assert!(frames(&mut link).is_empty());
    assert_eq!(link.state(), Some(LinkState::Reconnecting));
    assert_eq!(out(&mut link), [vec![0x28, 0x11, 0x0A], vec![0x02]]);
    assert_eq!(link.stats().chip_resets, 1);
    link.handle_bytes(t0 + ms(102), &[0x07]);
    assert_eq!(link.state(), Some(LinkState::Connected));
    // The frame that was in flight is sent again.
    let sent = out(&mut link);
    assert_eq!(sent.len(), 1);
    assert_eq!(decode_transmit(&sent[0]).destination.raw(), 0x0A09);
}

#[test]
fn bus_voltage_loss_and_return() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    // Bytes keep the keep-alive away.
    link.handle_bytes(t0 + ms(5_000), &bytes(&tp_group_write((1, 2, 3), 1)));
    out(&mut link);
    events(&mut link);
    let mut t = t0 + ms(15_000);
    assert_eq!(link.poll_timeout(), Some(t));
    link.handle_timeout(t);
    assert_eq!(out(&mut link), [vec![0x02]]);
    // A present chip answers.
    link.handle_bytes(t + ms(1), &[0x07]);
    assert!(events(&mut link).is_empty());
    // Then the bus voltage goes: the chip falls silent.
    t += ms(1) + Duration::from_secs(10);
    link.handle_timeout(t);
    assert_eq!(out(&mut link), [vec![0x02]]);
    for _ in 1..KEEPALIVE_ATTEMPTS {
        t += STATE_TIMEOUT;
        link.handle_timeout(t);
        assert_eq!(out(&mut link), [vec![0x02]]);
    }
    t += STATE_TIMEOUT;
    link.handle_timeout(t);
    assert_eq!(out(&mut link), [vec![0x01]]);
    assert_eq!(
        events(&mut link),
        [LinkEvent::State(LinkState::Reconnecting)]
    );
    for _ in 0..RESET_ATTEMPTS {
        t += RESET_TIMEOUT;
        link.handle_timeout(t);
        assert_eq!(out(&mut link), [vec![0x01]]);
    }
    assert_eq!(events(&mut link), [LinkEvent::State(LinkState::Down)]);
    // Voltage returns: the chip powers up and says so.
    t += ms(2_000);
    link.handle_bytes(t, &[0x03]);
    assert_eq!(out(&mut link), [vec![0x28, 0x11, 0x0A], vec![0x02]]);
    link.handle_bytes(t, &[0x07]);
    assert_eq!(
        events(&mut link),
        [
            LinkEvent::State(LinkState::Reconnecting),
            LinkEvent::State(LinkState::Connected)
        ]
    );
}

#[test]
fn our_echo_is_not_delivered_nor_acknowledged() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    let sent = decode_transmit(&out(&mut link)[0]);
    link.handle_bytes(t0 + ms(20), &bytes(&sent));
    assert!(
        out(&mut link).is_empty(),
        "no U_AckInformation for our echo"
    );
    link.handle_bytes(t0 + ms(21), &[0x8B]);
    assert!(frames(&mut link).is_empty());
    assert_eq!(link.stats().confirmed, 1);
}

#[test]
fn repetitions_of_a_delivered_frame_are_dropped() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    let original = tp_group_write((1, 2, 3), 1);
    let mut repetition = original.clone();
    repetition.repeated = true;
    link.handle_bytes(t0, &bytes(&original));
    link.handle_bytes(t0 + ms(20), &bytes(&repetition));
    assert_eq!(frames(&mut link).len(), 1);
    // A repetition whose original was missed is delivered.
    let mut other = tp_group_write((1, 2, 4), 1);
    other.repeated = true;
    link.handle_bytes(t0 + ms(40), &bytes(&other));
    assert_eq!(frames(&mut link).len(), 1);
    // A new, unrepeated frame with the same content is a new telegram.
    link.handle_bytes(t0 + ms(60), &bytes(&original));
    link.handle_bytes(t0 + ms(80), &bytes(&original));
    assert_eq!(frames(&mut link).len(), 2);
}

#[test]
fn close_reports_down_and_stops() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    link.close(t0);
    assert!(link.is_closed());
    assert_eq!(events(&mut link), [LinkEvent::State(LinkState::Down)]);
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    link.handle_bytes(t0, &[0x03, 0x07]);
    assert!(out(&mut link).is_empty());
    assert_eq!(link.poll_timeout(), None);
}

#[test]
fn a_full_queue_refuses_frames() {
    let t0 = Instant::now();
    let mut link = online(t0, TpUartOptions::default());
    for _ in 0..MAX_QUEUE {
        link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    }
    assert!(!link.wants_frames());
    link.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    assert_eq!(link.queued(), MAX_QUEUE);
    assert_eq!(link.stats().dropped, 1);
}

fn arb_frame() -> impl Strategy<Value = TpFrame> {
    (any::<u16>(), 0u8..64, any::<bool>()).prop_map(|(ga, value, ext)| {
        let mut f = tp_group_write((0, 0, 0), 0);
        f.destination = Destination::Group(GroupAddress::from_raw(ga));
        f.tpdu = Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(value)));
        if ext {
            f.frame_format = FrameFormat::Extended;
        }
        f
    })
}

proptest! {
    /// Arbitrary bytes in arbitrary chunks at arbitrary times never panic, and the machine
    /// keeps its promises: a timer while running, a bounded receive buffer.
    #[test]
    fn any_byte_stream_is_survived(
        chunks in vec((vec(any::<u8>(), 0..40), 0u64..300), 0..40)
    ) {
        let t0 = Instant::now();
        let mut link = TpUartLink::new(t0, ia(OWN), TpUartOptions::default());
        let mut t = t0;
        for (chunk, gap) in chunks {
            t += ms(gap);
            if link.poll_timeout().is_some_and(|d| d <= t) {
                link.handle_timeout(t);
            }
            link.handle_bytes(t, &chunk);
            prop_assert!(link.rx.len() <= 263);
            prop_assert!(link.poll_timeout().is_some());
            for o in out(&mut link) {
                prop_assert!(!o.is_empty());
            }
            let _ = events(&mut link);
        }
    }

    /// Back-to-back frames cut into arbitrary chunks all come out, in order.
    #[test]
    fn frames_in_any_chunking_are_delivered(
        sent in vec(arb_frame(), 1..8),
        cuts in vec(1usize..12, 1..40),
    ) {
        let t0 = Instant::now();
        let mut link = online(t0, TpUartOptions::default());
        let stream: Vec<u8> = sent.iter().flat_map(bytes).collect();
        let mut rest = stream.as_slice();
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(1).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            link.handle_bytes(t0, chunk);
            rest = tail;
        }
        let got: Vec<TpFrame> = frames(&mut link).iter().map(TpFrame::from_ldata).collect();
        prop_assert_eq!(got, sent);
    }

    /// Garbage (anything but a chip reset), a pause, then a frame: the frame comes out.
    #[test]
    fn a_frame_after_garbage_and_a_pause_is_delivered(
        garbage in vec(any::<u8>().prop_filter("not U_Reset.ind", |b| *b != 0x03), 0..60),
        frame in arb_frame(),
    ) {
        let t0 = Instant::now();
        let mut link = online(t0, TpUartOptions::default());
        link.handle_bytes(t0, &garbage);
        let _ = events(&mut link);
        link.handle_bytes(t0 + ms(150), &bytes(&frame));
        let got: Vec<TpFrame> = frames(&mut link).iter().map(TpFrame::from_ldata).collect();
        prop_assert_eq!(got.last(), Some(&frame));
        prop_assert_eq!(link.state(), Some(LinkState::Connected));
    }
}

#[test]
fn new_addresses_from_ets_are_acknowledged_at_once() {
    let t0 = Instant::now();
    let options = TpUartOptions {
        ack_groups: AckGroups::Only(HashSet::from([GroupAddress::three_level(1, 2, 3).unwrap()])),
        set_address: false,
        ..TpUartOptions::default()
    };
    let mut link = online(t0, options);
    link.set_own_device(crate::knx::link::OwnDevice {
        own: ia("1.1.20"),
        groups: Some(vec![GroupAddress::three_level(7, 0, 1).unwrap()]),
        programming_mode: false,
        identity: crate::knx::device::Identity::default(),
    });
    assert!(
        out(&mut link).is_empty(),
        "the host acknowledges itself here"
    );
    link.handle_bytes(t0, &bytes(&tp_group_write((7, 0, 1), 1)));
    assert_eq!(out(&mut link), [vec![0x11]], "the newly linked group");
    link.handle_bytes(t0, &bytes(&tp_group_write((1, 2, 3), 1)));
    assert!(out(&mut link).is_empty(), "a group no longer linked");
    let mut to_us = tp_group_write((0, 0, 0), 1);
    to_us.destination = Destination::Individual(ia("1.1.20"));
    link.handle_bytes(t0, &bytes(&to_us));
    assert_eq!(out(&mut link), [vec![0x11]], "the new individual address");
    // With a chip that knows the address, it is told the new one (U_SetAddress).
    let mut chip = online(t0, TpUartOptions::default());
    chip.set_own_device(crate::knx::link::OwnDevice {
        own: ia("1.1.20"),
        groups: None,
        programming_mode: true,
        identity: crate::knx::device::Identity::default(),
    });
    assert_eq!(out(&mut chip), [vec![0x28, 0x11, 0x14]]);
}
