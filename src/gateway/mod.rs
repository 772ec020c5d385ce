//! The gateway: the async shell that hosts the core ([`shell`]), the charger and meter tasks
//! that poll the drivers and turn what they report into core events ([`tasks`]), and the
//! composition root that starts them together ([`start`]).

pub mod shell;
pub mod start;
pub mod tasks;
