//! The async shell around the core, on a real tokio runtime: start-up publishes fault
//! objects, events reach the core, the snapshot follows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use knx_echarge::config::file;
use knx_echarge::core::{AppLed, Event};
use knx_echarge::gateway::shell;
use knx_echarge::objects::Value;
use knx_echarge::units::GoNumber;

async fn wait_for(
    handle: &mut shell::ShellHandle,
    pred: impl Fn(&shell::Snapshot) -> bool,
) -> shell::Snapshot {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if pred(&handle.snapshot.borrow()) {
                return handle.snapshot.borrow().clone();
            }
            handle.snapshot.changed().await.unwrap();
        }
    })
    .await
    .expect("snapshot condition not reached within 5 s")
}

#[tokio::test]
async fn faulty_configuration_is_reported_and_the_gateway_keeps_serving() {
    let config = file::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/configs/duplicate-ip.toml"
    )))
    .unwrap();
    let mut handle = shell::spawn(config, true, None);
    let snap = wait_for(&mut handle, |s| s.leds.is_some()).await;
    assert_eq!(
        snap.objects.get(&GoNumber(145)),
        Some(&Value::Text("Conf Charger".into()))
    );
    assert_eq!(snap.objects.get(&GoNumber(144)), Some(&Value::Bool(true)));
    assert_eq!(snap.leds.unwrap().app, AppLed::FiveFlashes);
    // At the charging point and, as a general fault (table 62), on objects 8/9.
    assert_eq!(snap.faults.len(), 2);
    assert_eq!(
        snap.objects.get(&GoNumber(9)),
        Some(&Value::Text("Conf Charger".into()))
    );
    // Still serving: an interruption written on the bus reaches the core.
    handle
        .events
        .send(Event::ObjectWritten {
            object: GoNumber(55),
            value: Value::Bool(true),
        })
        .await
        .unwrap();
    wait_for(&mut handle, |s| {
        s.objects.get(&GoNumber(56)) == Some(&Value::Bool(true))
    })
    .await;
    handle.events.send(Event::ProgrammingButton).await.unwrap();
    wait_for(&mut handle, |s| s.programming_mode).await;
    handle.shutdown().await;
}

/// A KNX telegram in on the bus side reaches the core through the object engine, and the
/// core's reaction goes out as a telegram encoded with the object's DPT.
#[tokio::test]
async fn telegrams_flow_through_engine_and_core() {
    use knx_echarge::knx::GroupAddress;
    use knx_echarge::knx::link::LinkEvent;
    use knx_echarge::knx::wire::apdu::{Apdu, Payload, Tpdu};
    use knx_echarge::knx::wire::cemi::{Destination, LData, LDataService};
    use tokio::sync::mpsc;

    let config = file::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/five-chargers.toml"
    )))
    .unwrap();
    let (to_bus, mut bus_out) = mpsc::channel(64);
    let (bus_in, from_bus) = mpsc::channel(64);
    let handle = shell::spawn(
        config,
        true,
        Some(shell::Bus {
            to_bus,
            from_bus,
            control: None,
        }),
    );
    let ga = |s: &str| s.parse::<GroupAddress>().unwrap();
    let next = |rx: &mut mpsc::Receiver<LData>| {
        let f = rx.try_recv().ok()?;
        match (f.destination, f.tpdu) {
            (Destination::Group(g), Tpdu::Data(a)) => Some((g, a)),
            _ => None,
        }
    };
    // Start-up: fault state and interruption states go out, and objects with the I flag
    // (1, 10, 11, 12) ask the bus for their values.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut startup = Vec::new();
    while let Some(t) = next(&mut bus_out) {
        startup.push(t);
    }
    assert!(
        startup.contains(&(ga("0/0/8"), Apdu::GroupValueWrite(Payload::Short(0)))),
        "{startup:?}"
    );
    let mut no_error = b"No error".to_vec();
    no_error.resize(14, 0);
    assert!(startup.contains(&(ga("0/0/9"), Apdu::GroupValueWrite(Payload::Long(no_error)))));
    for read in ["0/0/1", "0/0/10", "0/0/11", "0/0/12"] {
        assert!(
            startup.contains(&(ga(read), Apdu::GroupValueRead)),
            "read of {read} missing"
        );
    }
    // Interrupt charging point 2 from a push button.
    let write = LData::new(
        LDataService::Ind,
        "1.1.99".parse().unwrap(),
        Destination::Group(ga("2/0/5")),
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1))),
    );
    bus_in.send(LinkEvent::Frame(write)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), bus_out.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.destination, Destination::Group(ga("2/0/6")));
    assert_eq!(
        reply.tpdu,
        Tpdu::Data(Apdu::GroupValueWrite(Payload::Short(1)))
    );
    assert_eq!(reply.source.to_string(), "1.1.10");
    // A read of the state object is answered with the value.
    let read = LData::new(
        LDataService::Ind,
        "1.1.99".parse().unwrap(),
        Destination::Group(ga("2/0/6")),
        Tpdu::Data(Apdu::GroupValueRead),
    );
    bus_in.send(LinkEvent::Frame(read)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), bus_out.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        answer.tpdu,
        Tpdu::Data(Apdu::GroupValueResponse(Payload::Short(1)))
    );
    assert!(handle.snapshot.borrow().telegrams_sent >= startup.len() as u64 + 2);
    handle.shutdown().await;
}

/// What must survive a restart goes to the data directory (atomically) and comes back: the
/// energy of a charge that runs across a restart of the gateway counts from the plug-in.
#[tokio::test]
async fn energy_counters_are_kept_in_the_data_directory_across_a_restart() {
    use knx_echarge::chargers::{ChargerStatus, CpState};
    use knx_echarge::store::DataDir;
    use knx_echarge::units::{ChargePointId, Current, Energy, PerPhase};

    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/five-chargers.toml"
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = DataDir::open(dir.path()).unwrap();
    let charging = |wh: i32| ChargerStatus {
        state: Some(CpState::Charging),
        connected: true,
        charging: true,
        currents: Some(PerPhase([Current::from_amps(16); 3])),
        energy_total: Some(Energy::from_watt_hours(wh)),
        ..ChargerStatus::default()
    };
    let cp1 = ChargePointId::new(1).unwrap();
    let file = store.file(shell::PERSISTED_FILE);
    // A gateway on `store` whose charging point 1 reports a vehicle charging with the box's
    // lifetime counter at `wh`.
    let start_polled = |wh: i32| {
        let store = store.clone();
        async move {
            let handle = shell::spawn_with_store(
                file::load(path).unwrap(),
                true,
                None,
                shell::ChargerSenders::new(),
                Some(store),
            );
            handle
                .events
                .send(Event::ChargerPolled {
                    cp: cp1,
                    status: charging(wh),
                })
                .await
                .unwrap();
            handle
        }
    };

    let handle = start_polled(5000).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("counters written");
    handle.shutdown().await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("5000000"), "{text}");

    // The restart: the box has counted on to 8 kWh meanwhile.
    let mut handle = start_polled(8000).await;
    wait_for(&mut handle, |s| {
        s.objects.get(&GoNumber(74)) == Some(&Value::Energy(Energy::from_watt_hours(3000)))
    })
    .await;
    handle.shutdown().await;

    // A file damaged outside the gateway is ignored: the charge counts from the first poll.
    std::fs::write(&file, b"{not json").unwrap();
    let mut handle = start_polled(9000).await;
    wait_for(&mut handle, |s| {
        s.objects.get(&GoNumber(74)) == Some(&Value::Energy(Energy::ZERO))
    })
    .await;
    handle.shutdown().await;
}
