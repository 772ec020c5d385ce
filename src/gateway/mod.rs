//! The gateway: the async shell that hosts the core ([`shell`]), the charger and meter tasks
//! that poll the drivers and turn what they report into core events ([`tasks`]), the
//! composition root that starts them together ([`start`]), and the device around them: front
//! panel, RS485 mode, OS network settings, systemd ([`device`]), and the IP settings the
//! built-in KNXnet/IP server reports to ETS ([`ip_parameters`]).

pub mod device;
pub mod ip_parameters;
pub mod shell;
pub mod start;
pub mod tasks;
