//! The gateway: the async shell that hosts the core ([`shell`]), the charger and meter tasks
//! that poll the drivers and turn what they report into core events ([`tasks`]).

pub mod shell;
pub mod tasks;
