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
use knx_echarge::objects::Value;
use knx_echarge::shell;
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
    let mut handle = shell::spawn(config, true);
    let snap = wait_for(&mut handle, |s| s.leds.is_some()).await;
    assert_eq!(
        snap.objects.get(&GoNumber(145)),
        Some(&Value::Text("Conf Charger".into()))
    );
    assert_eq!(snap.objects.get(&GoNumber(144)), Some(&Value::Bool(true)));
    assert_eq!(snap.leds.unwrap().app, AppLed::FiveFlashes);
    assert_eq!(snap.faults.len(), 1);
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
