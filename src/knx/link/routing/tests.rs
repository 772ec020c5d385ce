use super::*;
use crate::knx::link::testkit::{addr, bytes, events, group_write, ia, sent};

const GROUP: &str = "224.0.23.12:3671";

fn router(seed: u64) -> Router {
    let SocketAddr::V4(group) = addr(GROUP) else {
        unreachable!()
    };
    let mut r = Router::new(ia("1.1.10"), group, seed);
    assert_eq!(events(&mut r), [LinkEvent::State(LinkState::Connected)]);
    r
}

fn indication(frame: LData) -> Vec<u8> {
    bytes(&KnxIpFrame::RoutingIndication(Cemi::LData(frame)))
}

fn busy(wait_ms: u16) -> Vec<u8> {
    bytes(&KnxIpFrame::RoutingBusy {
        device_state: 0,
        wait_time_ms: wait_ms,
        control: 0,
    })
}

#[test]
fn gateway_frames_go_to_the_group_paced_at_50_per_second() {
    let mut r = router(1);
    let t0 = Instant::now();
    for v in 0..3 {
        r.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), v));
    }
    let out = sent(&mut r);
    let [(to, KnxIpFrame::RoutingIndication(Cemi::LData(f)))] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(*to, addr(GROUP));
    assert_eq!(f.service, LDataService::Ind);
    assert_eq!(f.source, ia("1.1.10"));
    assert_eq!(r.poll_timeout(), Some(t0 + MIN_GAP));
    r.handle_timeout(t0 + MIN_GAP);
    assert_eq!(sent(&mut r).len(), 1);
    r.handle_timeout(t0 + MIN_GAP * 2);
    assert_eq!(sent(&mut r).len(), 1);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn indications_of_others_are_delivered_and_our_own_are_not() {
    let mut r = router(1);
    let now = Instant::now();
    let theirs = group_write(LDataService::Ind, "1.1.20", (1, 2, 3), 1);
    r.handle_datagram(now, addr("10.0.0.2:3671"), &indication(theirs.clone()));
    assert_eq!(events(&mut r), [LinkEvent::Frame(theirs)]);
    let ours = group_write(LDataService::Ind, "1.1.10", (1, 2, 3), 1);
    r.handle_datagram(now, addr("10.0.0.1:3671"), &indication(ours));
    assert!(events(&mut r).is_empty());
    assert!(sent(&mut r).is_empty(), "routing never answers");
}

#[test]
fn busy_pauses_sending_for_the_wait_time() {
    let mut r = router(7);
    let t0 = Instant::now();
    r.handle_datagram(t0, addr("10.0.0.2:3671"), &busy(100));
    // The first busy frame of a period: no random extension (N = 0).
    assert_eq!(r.paused_until(), Some(t0 + Duration::from_millis(100)));
    r.handle_frame(t0, group_write(LDataService::Req, "0.0.0", (1, 2, 3), 1));
    assert!(sent(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    r.handle_timeout(t0 + Duration::from_millis(99));
    assert!(sent(&mut r).is_empty());
    r.handle_timeout(t0 + Duration::from_millis(100));
    assert_eq!(sent(&mut r).len(), 1);
}

#[test]
fn repeated_busy_frames_add_a_random_back_off_of_up_to_n_times_50_ms() {
    let mut extensions = Vec::new();
    for seed in 0..40 {
        let mut r = router(seed);
        let t0 = Instant::now();
        r.handle_datagram(t0, addr("10.0.0.2:3671"), &busy(50));
        // Busy frames 20 ms apart while pausing: N = 1, 2, 3.
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_millis(20);
            r.handle_datagram(t, addr("10.0.0.3:3671"), &busy(50));
        }
        let until = r.paused_until().unwrap();
        let extension = until - (t + Duration::from_millis(50));
        assert!(extension <= BUSY_RANDOM_STEP * 3, "{extension:?}");
        extensions.push(extension);
        // A busy frame within 10 ms of the last does not count.
        let before = r.busy_count;
        r.handle_datagram(
            t + Duration::from_millis(5),
            addr("10.0.0.3:3671"),
            &busy(50),
        );
        assert_eq!(r.busy_count, before);
    }
    extensions.sort();
    extensions.dedup();
    assert!(
        extensions.len() > 10,
        "the back-off is random: {extensions:?}"
    );
}

#[test]
fn the_busy_count_decays_after_the_slow_down_period() {
    let mut r = router(3);
    let t0 = Instant::now();
    r.handle_datagram(t0, addr("10.0.0.2:3671"), &busy(50));
    r.handle_datagram(
        t0 + Duration::from_millis(20),
        addr("10.0.0.2:3671"),
        &busy(50),
    );
    r.handle_datagram(
        t0 + Duration::from_millis(40),
        addr("10.0.0.2:3671"),
        &busy(50),
    );
    assert_eq!(r.busy_count, 2);
    let resume = r.paused_until().unwrap();
    assert_eq!(r.busy_count_at(resume + BUSY_SLOW_STEP * 2), 2);
    assert_eq!(
        r.busy_count_at(resume + BUSY_SLOW_STEP * 2 + BUSY_DECAY_STEP),
        1
    );
    assert_eq!(r.busy_count_at(resume + Duration::from_secs(1)), 0);
}

#[test]
fn lost_messages_and_garbage_are_only_logged() {
    let mut r = router(1);
    let now = Instant::now();
    let lost = bytes(&KnxIpFrame::RoutingLostMessage {
        device_state: 0,
        lost_messages: 3,
    });
    for datagram in [&lost[..], &[], &[0x06, 0x10, 0x05, 0x30, 0x00, 0x07, 0x29]] {
        r.handle_datagram(now, addr("10.0.0.2:3671"), datagram);
    }
    assert!(events(&mut r).is_empty());
    assert!(sent(&mut r).is_empty());
}

#[test]
fn close_reports_down() {
    let mut r = router(1);
    r.close(Instant::now());
    assert!(r.is_closed());
    assert_eq!(events(&mut r), [LinkEvent::State(LinkState::Down)]);
}
