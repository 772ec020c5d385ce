//! Faults: the error codes and severity levels of the spec (ch. 11) and how they are shown.
//!
//! This module owns:
//! * [`FaultCode`]: every code of the spec, with its text (≤ 14 characters: it is sent as DPT
//!   16.001 on objects 9 and 95 + offset) and its severity, which for `DLM InvCurrent` depends
//!   on whether it is reported for the device (70) or for a charging point (90);
//! * [`Fault`]: a code raised for a scope (the device or one charging point) with a message
//!   for logs and the website;
//! * [`FaultBoard`]: the display rules. A scope shows its "last or current fault". A fault with
//!   a lower severity does not overwrite a higher one that is still present. Severity 40 is
//!   information only and never stays present. [`FaultBoard::led`] is the "APP" LED pattern for
//!   the highest present severity.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::units::ChargePointId;

/// An error code of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultCode {
    /// A serious error; log files and support needed (130).
    ContactSupport,
    /// No charging point is completely configured (120).
    ConfNoCharger,
    /// A charging point is configured wrongly (120).
    ConfCharger,
    /// A retrofit electricity meter is configured wrongly (120).
    ConfEMeter,
    /// Group objects the DLM needs are not linked (120).
    DlmAssociation,
    /// The smart meter fell silent; DLM in emergency mode (90).
    SmartMeterTOut,
    /// The minimum currents of the active charging points exceed the budget (80).
    OverCurrent,
    /// Invalid current values from a charging point (device 70, charging point 90).
    DlmInvCurrent,
    /// The charging point cannot be reached (80).
    NotReachable,
    /// The device at the address is not the configured model (70).
    WrongCharger,
    /// Erroneous answers from the charging point (60).
    Comm,
    /// The charging point reports an internal fault (50).
    ChargerError,
    /// The state of the charging point forbids the action (40, information only).
    OpNotPossible,
    /// A set value is outside the permitted range (40, information only).
    ValOutOfRange,
    /// The retrofit meter cannot be reached (30).
    EMeterNotReach,
    /// Erroneous answers from the retrofit meter (20).
    EMeterComm,
    /// The retrofit meter reports an internal fault (10).
    EMeterError,
}

impl FaultCode {
    /// Every code.
    pub const ALL: [Self; 17] = [
        Self::ContactSupport,
        Self::ConfNoCharger,
        Self::ConfCharger,
        Self::ConfEMeter,
        Self::DlmAssociation,
        Self::SmartMeterTOut,
        Self::OverCurrent,
        Self::DlmInvCurrent,
        Self::NotReachable,
        Self::WrongCharger,
        Self::Comm,
        Self::ChargerError,
        Self::OpNotPossible,
        Self::ValOutOfRange,
        Self::EMeterNotReach,
        Self::EMeterComm,
        Self::EMeterError,
    ];

    /// The code as the spec writes it; also the text sent on KNX (at most 14 characters).
    pub const fn text(self) -> &'static str {
        match self {
            Self::ContactSupport => "ContactSupport",
            Self::ConfNoCharger => "Conf NoCharger",
            Self::ConfCharger => "Conf Charger",
            Self::ConfEMeter => "Conf EMeter",
            Self::DlmAssociation => "DLMAssociation",
            Self::SmartMeterTOut => "SmartMeterTOut",
            Self::OverCurrent => "OverCurrent",
            Self::DlmInvCurrent => "DLM InvCurrent",
            Self::NotReachable => "NotReachable",
            Self::WrongCharger => "WrongCharger",
            Self::Comm => "Comm",
            Self::ChargerError => "ChargerError",
            Self::OpNotPossible => "OpNotPossible",
            Self::ValOutOfRange => "ValOutOfRange",
            Self::EMeterNotReach => "EMeterNotReach",
            Self::EMeterComm => "EMeter Comm",
            Self::EMeterError => "EMeter Error",
        }
    }

    /// Severity level in `scope`.
    pub const fn severity(self, scope: Scope) -> Severity {
        Severity(match self {
            Self::ContactSupport => 130,
            Self::ConfNoCharger | Self::ConfCharger | Self::ConfEMeter | Self::DlmAssociation => {
                120
            }
            Self::SmartMeterTOut => 90,
            Self::DlmInvCurrent => match scope {
                Scope::Device => 70,
                Scope::ChargingPoint(_) => 90,
            },
            Self::OverCurrent | Self::NotReachable => 80,
            Self::WrongCharger => 70,
            Self::Comm => 60,
            Self::ChargerError => 50,
            Self::OpNotPossible | Self::ValOutOfRange => 40,
            Self::EMeterNotReach => 30,
            Self::EMeterComm => 20,
            Self::EMeterError => 10,
        })
    }

    /// A one-line description for logs and the website (English).
    pub const fn description(self) -> &'static str {
        match self {
            Self::ContactSupport => {
                "A serious error is present. Generate the log files and contact support."
            }
            Self::ConfNoCharger => {
                "No charging point is completely configured (manufacturer, model and address)."
            }
            Self::ConfCharger => "A charging point is not configured properly.",
            Self::ConfEMeter => "A charging point's electricity meter is not configured properly.",
            Self::DlmAssociation => "Not all group objects required for the DLM are linked.",
            Self::SmartMeterTOut => {
                "The smart meter has not sent values within the interval; DLM emergency mode (minimum current)."
            }
            Self::OverCurrent => {
                "The minimum currents of the active charging points exceed the available current; charging is interrupted."
            }
            Self::DlmInvCurrent => {
                "A charging point supplies invalid current values; the DLM cannot take it into account."
            }
            Self::NotReachable => "The charging point cannot be reached.",
            Self::WrongCharger => "The connected charging point is not the configured model.",
            Self::Comm => "The charging point gives erroneous answers.",
            Self::ChargerError => {
                "The charging point reports an internal fault (see fault info 1-4)."
            }
            Self::OpNotPossible => "The state of the charging point prevents the action.",
            Self::ValOutOfRange => "The set value is outside the permitted range.",
            Self::EMeterNotReach => {
                "The electricity meter at the charging point cannot be reached."
            }
            Self::EMeterComm => {
                "The electricity meter at the charging point gives erroneous answers."
            }
            Self::EMeterError => {
                "The electricity meter at the charging point reports an internal fault."
            }
        }
    }
}

impl fmt::Display for FaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl Serialize for FaultCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text())
    }
}

/// The text shown when no fault occurred since start-up.
pub const NO_ERROR: &str = "No error";

/// A severity level (10..=130; higher is worse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Severity(pub u8);

impl Severity {
    /// 120–130: the system is out of operation until a new configuration is downloaded.
    pub const fn is_serious(self) -> bool {
        self.0 >= 120
    }

    /// 60–110: a temporary fault of one component.
    pub const fn is_temporary(self) -> bool {
        self.0 >= 60 && self.0 < 120
    }

    /// 40: information only, reset at once.
    pub const fn is_information(self) -> bool {
        self.0 == 40
    }
}

/// What a fault is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The device (general faults; objects 8 and 9).
    Device,
    /// One charging point (objects 94 and 95 + offset).
    ChargingPoint(ChargePointId),
}

/// A raised fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Error code.
    pub code: FaultCode,
    /// Severity level (follows from code and scope).
    pub severity: Severity,
    /// The charging point, or `None` for a device fault.
    pub charging_point: Option<ChargePointId>,
    /// What exactly is wrong (which field, which value, why).
    pub message: String,
}

impl Fault {
    /// A device fault.
    pub fn device(code: FaultCode, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(Scope::Device),
            charging_point: None,
            message: message.into(),
        }
    }

    /// A charging-point fault.
    pub fn charging_point(code: FaultCode, cp: ChargePointId, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(Scope::ChargingPoint(cp)),
            charging_point: Some(cp),
            message: message.into(),
        }
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.charging_point
            .map_or(Scope::Device, Scope::ChargingPoint)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.charging_point {
            Some(cp) => write!(
                f,
                "{} ({}) at charging point {cp}: {}",
                self.code, self.severity.0, self.message
            ),
            None => write!(f, "{} ({}): {}", self.code, self.severity.0, self.message),
        }
    }
}

/// The "APP" LED pattern for faults (spec ch. 8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FaultLed {
    /// No fault shown: steady green.
    Normal,
    /// Severity 60–110: three slow flashes.
    ThreeFlashes,
    /// Severity 120–130: five slow flashes.
    FiveFlashes,
}

/// What one scope displays: "fault present" and "last fault".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultDisplay {
    /// At least one fault is present (objects 8 / 94 + offset).
    pub present: bool,
    /// The last or current fault (objects 9 / 95 + offset); `None` = "No error".
    pub last: Option<Fault>,
}

impl FaultDisplay {
    /// The text sent on KNX for the last fault.
    pub fn text(&self) -> &'static str {
        self.last.as_ref().map_or(NO_ERROR, |f| f.code.text())
    }
}

#[derive(Debug, Default, Clone)]
struct ScopeState {
    /// Present faults by code.
    present: BTreeMap<FaultCode, Fault>,
    /// The displayed last or current fault.
    last: Option<Fault>,
}

impl ScopeState {
    fn highest_present(&self) -> Option<&Fault> {
        self.present.values().max_by_key(|f| f.severity)
    }

    fn display(&self) -> FaultDisplay {
        FaultDisplay {
            present: !self.present.is_empty(),
            last: self.last.clone(),
        }
    }
}

/// The fault state of the device and the five charging points.
#[derive(Debug, Default, Clone)]
pub struct FaultBoard {
    scopes: BTreeMap<Scope, ScopeState>,
}

impl FaultBoard {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises `fault`. Returns true when what the scope displays changed. A fault is logged
    /// (warning) when it begins; clearing it is logged too, so the log ZIP shows both.
    ///
    /// The fault becomes the displayed one unless a present fault of higher severity is shown.
    /// Information-only faults (40) are displayed but are never present.
    pub fn raise(&mut self, fault: Fault) -> bool {
        let state = self.scopes.entry(fault.scope()).or_default();
        let before = state.display();
        let outranked = state
            .highest_present()
            .is_some_and(|h| h.severity > fault.severity);
        if !outranked {
            state.last = Some(fault.clone());
        }
        let changed;
        if fault.severity.is_information() {
            changed = state.display() != before;
            if changed {
                tracing::info!("information: {fault}");
            }
        } else {
            // Logged when it begins, not at each poll that still finds it.
            if !state.present.contains_key(&fault.code) {
                tracing::warn!("fault raised: {fault}");
            }
            state.present.insert(fault.code, fault);
            changed = state.display() != before;
        }
        changed
    }

    /// Clears `code` in `scope` (the condition went away). Returns true when the display changed.
    ///
    /// The display then shows the highest fault still present; with none left it keeps the
    /// last fault ("last or current fault") and "present" becomes false.
    pub fn clear(&mut self, scope: Scope, code: FaultCode) -> bool {
        let Some(state) = self.scopes.get_mut(&scope) else {
            return false;
        };
        let before = state.display();
        if let Some(gone) = state.present.remove(&code) {
            tracing::info!("fault cleared: {gone}");
            // A displayed fault that is still present stays (a lower one that was cleared
            // never showed); otherwise the highest still present takes its place.
            let shown_present = state
                .last
                .as_ref()
                .is_some_and(|l| state.present.contains_key(&l.code));
            if !shown_present && let Some(next) = state.highest_present().cloned() {
                state.last = Some(next);
            }
        }
        state.display() != before
    }

    /// Clears every present fault for which `keep` is false, as [`FaultBoard::clear`] would.
    /// Returns true when a display changed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Fault) -> bool) -> bool {
        let gone: Vec<(Scope, FaultCode)> = self
            .scopes
            .iter()
            .flat_map(|(scope, s)| s.present.values().map(move |f| (*scope, f)))
            .filter(|(_, f)| !keep(f))
            .map(|(scope, f)| (scope, f.code))
            .collect();
        let mut changed = false;
        for (scope, code) in gone {
            changed |= self.clear(scope, code);
        }
        changed
    }

    /// Forgets `scope` entirely, its last fault included (a charging point that is now
    /// another box or none). Returns true when its display changed.
    pub fn forget(&mut self, scope: Scope) -> bool {
        self.scopes
            .remove(&scope)
            .is_some_and(|s| s.display() != ScopeState::default().display())
    }

    /// Whether `code` is present in `scope`.
    pub fn is_present(&self, scope: Scope, code: FaultCode) -> bool {
        self.scopes
            .get(&scope)
            .is_some_and(|s| s.present.contains_key(&code))
    }

    /// What `scope` displays.
    pub fn display(&self, scope: Scope) -> FaultDisplay {
        self.scopes.get(&scope).map_or(
            FaultDisplay {
                present: false,
                last: None,
            },
            ScopeState::display,
        )
    }

    /// Every present fault, worst first.
    pub fn present(&self) -> Vec<Fault> {
        let mut all: Vec<Fault> = self
            .scopes
            .values()
            .flat_map(|s| s.present.values().cloned())
            .collect();
        all.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.charging_point.cmp(&b.charging_point))
        });
        all
    }

    /// The highest present severity anywhere.
    pub fn worst(&self) -> Option<Severity> {
        self.scopes
            .values()
            .filter_map(ScopeState::highest_present)
            .map(|f| f.severity)
            .max()
    }

    /// The "APP" LED pattern: the flash code of the highest present severity.
    pub fn led(&self) -> FaultLed {
        match self.worst() {
            Some(s) if s.is_serious() => FaultLed::FiveFlashes,
            Some(s) if s.is_temporary() => FaultLed::ThreeFlashes,
            _ => FaultLed::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(n: u8) -> ChargePointId {
        ChargePointId::new(n).unwrap()
    }

    #[test]
    fn retain_clears_like_clear_and_forget_drops_the_last_fault_too() {
        let mut board = FaultBoard::new();
        board.raise(Fault::device(FaultCode::ConfCharger, "duplicate IP"));
        board.raise(Fault::device(FaultCode::SmartMeterTOut, "no meter"));
        board.raise(Fault::charging_point(FaultCode::Comm, cp(2), "crc"));
        assert!(board.retain(|f| f.code != FaultCode::ConfCharger));
        assert_eq!(board.display(Scope::Device).text(), "SmartMeterTOut");
        assert!(board.is_present(Scope::ChargingPoint(cp(2)), FaultCode::Comm));
        assert!(board.forget(Scope::ChargingPoint(cp(2))));
        assert_eq!(board.display(Scope::ChargingPoint(cp(2))).last, None);
        assert!(!board.forget(Scope::ChargingPoint(cp(3))));
    }

    #[test]
    fn texts_fit_dpt_16_001() {
        for code in FaultCode::ALL {
            assert!(
                code.text().len() <= 14,
                "{code} is longer than 14 characters"
            );
            assert!(code.text().is_ascii());
        }
    }

    #[test]
    fn severities_follow_the_spec() {
        use FaultCode::*;
        let device = [
            (ContactSupport, 130),
            (ConfNoCharger, 120),
            (ConfCharger, 120),
            (ConfEMeter, 120),
            (DlmAssociation, 120),
            (SmartMeterTOut, 90),
            (OverCurrent, 80),
            (DlmInvCurrent, 70),
        ];
        for (code, level) in device {
            assert_eq!(code.severity(Scope::Device), Severity(level), "{code}");
        }
        let point = [
            (ConfCharger, 120),
            (ConfEMeter, 120),
            (DlmInvCurrent, 90),
            (NotReachable, 80),
            (WrongCharger, 70),
            (Comm, 60),
            (ChargerError, 50),
            (OpNotPossible, 40),
            (ValOutOfRange, 40),
            (EMeterNotReach, 30),
            (EMeterComm, 20),
            (EMeterError, 10),
        ];
        for (code, level) in point {
            assert_eq!(
                code.severity(Scope::ChargingPoint(cp(1))),
                Severity(level),
                "{code}"
            );
        }
    }

    /// Spec ch. 11.1: SmartMeterTOut (90) does not overwrite a present Conf Charger (120).
    #[test]
    fn lower_severity_does_not_overwrite_higher() {
        let mut board = FaultBoard::new();
        board.raise(Fault::device(FaultCode::ConfCharger, "duplicate IP"));
        assert!(!board.raise(Fault::device(FaultCode::SmartMeterTOut, "silent")));
        assert_eq!(board.display(Scope::Device).text(), "Conf Charger");
        // Once the higher one is gone, the display shows the highest fault still present.
        board.clear(Scope::Device, FaultCode::ConfCharger);
        assert_eq!(board.display(Scope::Device).text(), "SmartMeterTOut");
        assert!(board.display(Scope::Device).present);
    }

    /// Of two present faults of equal severity the one shown stays shown when a lower one,
    /// which never showed, goes away.
    #[test]
    fn clearing_a_hidden_fault_leaves_the_shown_one() {
        let mut board = FaultBoard::new();
        board.raise(Fault::device(FaultCode::ConfEMeter, "duplicate address"));
        board.raise(Fault::device(FaultCode::ConfNoCharger, "nothing complete"));
        board.raise(Fault::device(FaultCode::SmartMeterTOut, "silent"));
        assert!(!board.clear(Scope::Device, FaultCode::SmartMeterTOut));
        assert_eq!(board.display(Scope::Device).text(), "Conf NoCharger");
    }

    #[test]
    fn cleared_fault_stays_as_last_fault() {
        let mut board = FaultBoard::new();
        assert_eq!(board.display(Scope::Device).text(), NO_ERROR);
        board.raise(Fault::charging_point(
            FaultCode::NotReachable,
            cp(2),
            "timeout",
        ));
        assert!(board.clear(Scope::ChargingPoint(cp(2)), FaultCode::NotReachable));
        let d = board.display(Scope::ChargingPoint(cp(2)));
        assert!(!d.present);
        assert_eq!(d.text(), "NotReachable");
        // Other scopes are untouched.
        assert_eq!(board.display(Scope::ChargingPoint(cp(1))).text(), NO_ERROR);
    }

    #[test]
    fn information_faults_are_shown_but_never_present() {
        let mut board = FaultBoard::new();
        board.raise(Fault::charging_point(
            FaultCode::ValOutOfRange,
            cp(1),
            "40 A > 32 A",
        ));
        let d = board.display(Scope::ChargingPoint(cp(1)));
        assert_eq!((d.present, d.text()), (false, "ValOutOfRange"));
        assert_eq!(board.led(), FaultLed::Normal);
    }

    #[test]
    fn led_shows_highest_present_severity() {
        let mut board = FaultBoard::new();
        assert_eq!(board.led(), FaultLed::Normal);
        board.raise(Fault::charging_point(
            FaultCode::ChargerError,
            cp(1),
            "code 0x12",
        ));
        assert_eq!(
            board.led(),
            FaultLed::Normal,
            "severity 50 gives no visual signal"
        );
        board.raise(Fault::charging_point(FaultCode::Comm, cp(3), "bad reply"));
        assert_eq!(board.led(), FaultLed::ThreeFlashes);
        board.raise(Fault::device(
            FaultCode::DlmAssociation,
            "object 10 unlinked",
        ));
        assert_eq!(board.led(), FaultLed::FiveFlashes);
        board.clear(Scope::Device, FaultCode::DlmAssociation);
        assert_eq!(board.led(), FaultLed::ThreeFlashes);
    }
}
