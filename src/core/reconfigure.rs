//! A new configuration applied live ([`Event::Reconfigure`](super::Event::Reconfigure)):
//! what an ETS download changes without a restart, and what it must not lose.
//!
//! Calling protocol: the shell sends the event once a download is complete and decodes into
//! a [`Config`] (or with `configured = false` when a master reset unloaded the application);
//! it has already restarted the charger tasks whose endpoint changed and rebuilt the object
//! engine for the new table ([`crate::objects::engine::Engine::carry_over`]).
//!
//! What the core does:
//! * the object table, configuration faults and DLM settings become the new ones; the DLM
//!   starts a new controller (until its first cycle every charging point gets its minimum,
//!   the safe side that still charges, as at start);
//! * a charging point that is the same box at the same place ([`ChargePointConfig::same_box`])
//!   keeps its session: vehicle connected, energy at plug-in, process start, "complete"
//!   timer, interruption, its runtime faults; one that changed or went away is forgotten
//!   (faults, last fault, counters) and starts as at start-up;
//! * configuration faults and the device faults the DLM raises are cleared and found anew;
//! * every active charging point gets its failsafe settings and its current again (a task
//!   that was restarted knows nothing), setpoints from object 60 are kept inside the new
//!   limits;
//! * objects with the I flag are read again, as after the restart a download ends with on a
//!   KNX device; objects that no longer exist lose their values.

use std::time::Instant;

use super::{Action, Core, points};
use crate::config::{ChargePointConfig, Config, validate};
use crate::faults::{Fault, FaultCode, Scope};
use crate::objects::Value;
use crate::units::ChargePointId;

use crate::objects::number::cp as offset;
use crate::objects::number::device as object;

/// The fault codes that come from validating the configuration.
const CONFIG_CODES: [FaultCode; 4] = [
    FaultCode::ConfNoCharger,
    FaultCode::ConfCharger,
    FaultCode::ConfEMeter,
    FaultCode::DlmAssociation,
];

/// Whether `cp` is the same box in both configurations (both active).
fn kept(old: &Config, new: &Config, cp: ChargePointId) -> bool {
    let active = |c: &Config| c.charging_point(cp).filter(|c| c.is_active()).cloned();
    match (active(old), active(new)) {
        (Some(a), Some(b)) => a.same_box(&b),
        _ => false,
    }
}

impl Core {
    /// Raises the configuration faults found by validation. Table 62: a charging point's (or
    /// its meter's) configuration fault is a general fault too, so objects 8/9 show it; a
    /// later, lower one cannot overwrite it there. The device's own configuration faults
    /// (Conf NoCharger, DLMAssociation) are raised last, so that of equal severities object 9
    /// names the one that describes the whole device (no charging point complete: each
    /// incomplete one also carries Conf Charger).
    pub(super) fn raise_config_faults(&mut self) {
        let (device, points): (Vec<Fault>, Vec<Fault>) = self
            .config_faults
            .iter()
            .cloned()
            .partition(|f| f.scope() == Scope::Device);
        for fault in points {
            if matches!(fault.code, FaultCode::ConfCharger | FaultCode::ConfEMeter) {
                self.faults
                    .raise(Fault::device(fault.code, fault.message.clone()));
            }
            self.faults.raise(fault);
        }
        for fault in device {
            self.faults.raise(fault);
        }
    }

    /// Applies `config` live (see the module docs).
    pub(super) fn reconfigure(
        &mut self,
        config: Config,
        configured: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let old = std::mem::replace(&mut self.config, config);
        let keep: Vec<ChargePointId> = ChargePointId::all()
            .filter(|cp| kept(&old, &self.config, *cp))
            .collect();
        tracing::info!(
            kept = ?keep.iter().map(|cp| cp.number()).collect::<Vec<_>>(),
            configured,
            "configuration applied live"
        );
        self.configured = configured;
        self.config_faults = if configured {
            validate::validate(&self.config)
        } else {
            Vec::new()
        };
        self.out_of_operation = validate::out_of_operation(&self.config_faults);
        self.table = self.config.object_table();
        self.dlm = super::dlm::controller(&self.config);
        self.limits = crate::dlm::Limits::default();
        // Objects that no longer exist, and those of a charging point that is another box
        // now, lose their values (the next poll gives them again).
        let table = &self.table;
        self.values.retain(|o, _| {
            table.contains(*o) && o.charging_point().is_none_or(|(cp, _)| keep.contains(&cp))
        });
        // Faults: the configuration's and the DLM's are found anew; a charging point that is
        // no longer the same box starts with a clean slate.
        for cp in ChargePointId::all().filter(|cp| !keep.contains(cp)) {
            self.points.remove(&cp);
            self.faults.forget(Scope::ChargingPoint(cp));
        }
        self.faults.retain(|f| {
            !CONFIG_CODES.contains(&f.code)
                && (f.scope() != Scope::Device || f.code == FaultCode::ContactSupport)
        });
        self.raise_config_faults();
        self.set(
            object::GRID_CONTROL_STATE,
            Value::Bool(self.grid_control),
            out,
        );
        for cp in ChargePointId::all() {
            let interrupted = self.points.get(&cp).is_some_and(|p| p.interrupted);
            self.set(
                points::obj(cp, offset::INTERRUPTION_STATE),
                Value::Bool(interrupted),
                out,
            );
        }
        self.publish_faults(out);
        self.restart_points(out);
        self.dlm_update(now, out);
        self.read_on_init(out);
        out.push(Action::Persist(self.persisted()));
    }

    /// Failsafe settings and the current again for every active charging point; setpoints
    /// of kept points stay, inside the new limits.
    fn restart_points(&mut self, out: &mut Vec<Action>) {
        for cp in ChargePointId::all() {
            let Some(cfg): Option<ChargePointConfig> = self.operating(cp).cloned() else {
                continue;
            };
            out.push(Action::Charger {
                cp,
                command: crate::chargers::ChargerCommand::Failsafe {
                    current: cfg.failsafe_current,
                    timeout: cfg.failsafe_timeout,
                },
            });
            let point = self.points.entry(cp).or_default();
            point.commanded = None;
            point.setpoint = Some(point.setpoint.map_or(cfg.max_current, |s| {
                if s == crate::units::Current::ZERO {
                    s
                } else {
                    s.clamp_to(cfg.min_current, cfg.max_current)
                }
            }));
            self.apply_target(cp, out);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::chargers::{ChargerCommand, ChargerStatus, CpState};
    use crate::config::file;
    use crate::core::{AppLed, Event, Persisted};
    use crate::knx::GroupAddress;
    use crate::units::GoNumber;
    use crate::units::{Current, Energy, PerPhase};

    const FIVE: &str = include_str!("../../examples/five-chargers.toml");

    fn cp(n: u8) -> ChargePointId {
        ChargePointId::new(n).unwrap()
    }

    fn charging(wh: i32) -> ChargerStatus {
        ChargerStatus {
            state: Some(CpState::Charging),
            connected: true,
            charging: true,
            currents: Some(PerPhase::splat(Current::from_amps(10))),
            energy_total: Some(Energy::from_watt_hours(wh)),
            ..ChargerStatus::default()
        }
    }

    use crate::core::tests::sets;

    fn poll(core: &mut Core, n: u8, wh: i32, at: Instant) -> Vec<Action> {
        core.handle(
            Event::ChargerPolled {
                cp: cp(n),
                status: charging(wh),
            },
            at,
        )
    }

    fn reconfigure(core: &mut Core, config: Config, at: Instant) -> Vec<Action> {
        core.handle(
            Event::Reconfigure {
                config: Box::new(config),
                configured: true,
            },
            at,
        )
    }

    fn energy_last(actions: &[Action], n: u8) -> Option<Value> {
        sets(actions)
            .get(&(cp(n).object_base() + offset::ENERGY_LAST))
            .cloned()
    }

    #[test]
    fn sessions_and_counters_of_unchanged_boxes_survive_a_download() {
        let old = file::parse(FIVE, "test").unwrap();
        let mut core = Core::new(old.clone(), true);
        let t0 = Instant::now();
        let _ = core.handle(Event::Started, t0);
        let _ = poll(&mut core, 1, 5000, t0);
        let _ = poll(&mut core, 2, 5000, t0);
        // The download: other currents for 1 (same box), another box for 2, a new link.
        let mut new = old.clone();
        new.charging_points[0].max_current = Current::from_amps(20);
        new.charging_points[1].ip = "192.168.1.222".parse().unwrap();
        let ga: GroupAddress = "7/1/5".parse().unwrap();
        new.group_addresses.insert(GoNumber(105), vec![ga]);
        let t1 = t0 + Duration::from_secs(60);
        let a = reconfigure(&mut core, new, t1);
        // Every active charging point gets its failsafe settings and current again.
        for n in 1..=5 {
            assert!(
                a.iter().any(|x| matches!(x, Action::Charger { cp: c, command: ChargerCommand::Failsafe { .. } } if *c == cp(n))),
                "failsafe for {n}"
            );
        }
        // The persisted counters no longer hold the box that changed.
        let persisted: Vec<&Persisted> = a
            .iter()
            .filter_map(|x| match x {
                Action::Persist(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(
            persisted
                .last()
                .map(|p| p.plug_in_mwh.keys().copied().collect::<Vec<_>>()),
            Some(vec![1])
        );
        assert!(
            core.table()
                .get(GoNumber(105))
                .unwrap()
                .group_addresses
                .contains(&ga)
        );
        // Charging point 1 counts its charge from the plug-in before the download.
        let a = poll(&mut core, 1, 6500, t1 + Duration::from_secs(1));
        assert_eq!(
            energy_last(&a, 1),
            Some(Value::Energy(Energy::from_watt_hours(1500)))
        );
        // Charging point 2 is another box now: its charge counts from the first poll.
        let a = poll(&mut core, 2, 9000, t1 + Duration::from_secs(1));
        assert_eq!(energy_last(&a, 2), Some(Value::Energy(Energy::ZERO)));
    }

    #[test]
    fn configuration_faults_are_found_anew_and_unloading_means_unconfigured() {
        let text = "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\n[charging_point.2]\nenabled = true\nmodel = \"alfen-eve\"\nip = \"10.0.0.1\"\nunit_id = 255\n";
        let bad = file::parse(text, "test").unwrap();
        let mut core = Core::new(bad.clone(), true);
        let t0 = Instant::now();
        let a = core.handle(Event::Started, t0);
        // Spec ch. 11: a serious fault (120) takes charging point 2 out of operation until a
        // new download: no command, its polls ignored. Charging point 1 runs.
        let for_cp = |a: &[Action], n: u8| {
            a.iter()
                .any(|x| matches!(x, Action::Charger { cp: c, .. } if *c == cp(n)))
        };
        assert!(for_cp(&a, 1) && !for_cp(&a, 2), "{a:?}");
        let a = poll(&mut core, 2, 1000, t0);
        assert!(sets(&a).is_empty() && !for_cp(&a, 2), "{a:?}");
        assert_eq!(core.limits().get(cp(2)), None);
        assert!(
            core.faults()
                .is_present(Scope::ChargingPoint(cp(2)), FaultCode::ConfCharger)
        );
        assert!(
            core.faults()
                .is_present(Scope::Device, FaultCode::ConfCharger)
        );
        assert_eq!(core.leds().app, AppLed::FiveFlashes);
        let mut good = bad.clone();
        good.charging_points[1].unit_id = Some(1);
        good.charging_points[1].ip = "10.0.0.2".parse().unwrap();
        let a = reconfigure(&mut core, good, t0);
        assert!(
            for_cp(&a, 2),
            "in operation again after the new download: {a:?}"
        );
        assert!(
            core.faults().present().is_empty(),
            "{:?}",
            core.faults().present()
        );
        assert_eq!(sets(&a).get(&8), Some(&Value::Bool(false)));
        assert_eq!(core.leds().app, AppLed::On);
        // A master reset unloaded the application: unconfigured, nothing raised.
        let a = core.handle(
            Event::Reconfigure {
                config: Box::new(Config::defaults()),
                configured: false,
            },
            t0,
        );
        assert_eq!(core.leds().app, AppLed::Unconfigured);
        assert!(a.contains(&Action::Leds(core.leds())));
        assert!(core.config_faults().is_empty());
        // The charging point is gone: no commands for it, its objects no longer exist.
        let a = poll(&mut core, 1, 1000, t0 + Duration::from_secs(1));
        assert!(sets(&a).is_empty(), "{a:?}");
    }

    #[test]
    fn a_kept_interruption_and_setpoint_stay_within_the_new_limits() {
        let text = "[charging_point.1]\nenabled = true\nmodel = \"keba-p30\"\nip = \"10.0.0.1\"\nmax_current = 32\n";
        let old = file::parse(text, "test").unwrap();
        let mut core = Core::new(old.clone(), true);
        let t0 = Instant::now();
        let _ = core.handle(Event::Started, t0);
        let _ = core.handle(
            Event::ObjectWritten {
                object: GoNumber(60),
                value: Value::Current(Current::from_amps(25)),
            },
            t0,
        );
        let mut new = old.clone();
        new.charging_points[0].max_current = Current::from_amps(16);
        let a = reconfigure(&mut core, new, t0);
        assert!(a.contains(&Action::Charger {
            cp: cp(1),
            command: ChargerCommand::SetCurrent(Current::from_amps(16))
        }));
        let _ = core.handle(
            Event::ObjectWritten {
                object: GoNumber(55),
                value: Value::Bool(true),
            },
            t0,
        );
        let same = core.config().clone();
        let a = reconfigure(&mut core, same, t0);
        assert!(a.contains(&Action::Charger {
            cp: cp(1),
            command: ChargerCommand::SetCurrent(Current::ZERO)
        }));
        assert_eq!(core.value(GoNumber(56)), Some(&Value::Bool(true)));
    }
}
