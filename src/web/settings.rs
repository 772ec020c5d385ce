//! Settings of the website kept in the data directory (`web-settings.json`): logging mode,
//! DNS server (spec ch. 8.3.4) and NTP servers. A factory reset deletes the file.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::logs::LogMode;
use crate::store::DataDir;

/// File in the data directory.
pub const SETTINGS_FILE: &str = "web-settings.json";

/// Most NTP servers kept.
pub const MAX_NTP_SERVERS: usize = 3;

/// NTP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ntp {
    /// Synchronise the clock by NTP.
    pub enabled: bool,
    /// Server names or addresses, in order of preference.
    pub servers: Vec<String>,
}

impl Default for Ntp {
    fn default() -> Self {
        Self {
            enabled: true,
            servers: vec!["pool.ntp.org".to_owned()],
        }
    }
}

/// Network settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// DNS server; `None` = the one DHCP or the configuration gives.
    pub dns: Option<Ipv4Addr>,
}

/// Everything in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSettings {
    /// Logging mode.
    pub logging: LogMode,
    /// Network.
    pub network: Network,
    /// NTP.
    pub ntp: Ntp,
}

/// A setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Storing failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// Checks an NTP server name (host name or IPv4/IPv6 address).
pub fn valid_host(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The settings and their file.
#[derive(Debug)]
pub struct SettingsStore {
    data: DataDir,
    current: Mutex<WebSettings>,
}

impl SettingsStore {
    /// Reads the file (defaults if missing). A damaged file is logged and kept aside as
    /// `web-settings.json.bad`; the defaults apply until the settings are saved again.
    pub fn open(data: DataDir) -> Self {
        let current = match data.read(SETTINGS_FILE) {
            Ok(None) => WebSettings::default(),
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(settings) => settings,
                Err(e) => {
                    let bad = format!("{SETTINGS_FILE}.bad");
                    let kept = std::fs::rename(data.file(SETTINGS_FILE), data.file(&bad));
                    tracing::error!(
                        "{SETTINGS_FILE} is damaged ({e}); kept aside as {bad}{}; the default settings apply until they are saved again",
                        kept.err()
                            .map(|e| format!(" (failed: {e})"))
                            .unwrap_or_default()
                    );
                    WebSettings::default()
                }
            },
            Err(e) => {
                tracing::error!("cannot read {SETTINGS_FILE} ({e}); the default settings apply");
                WebSettings::default()
            }
        };
        Self {
            data,
            current: Mutex::new(current),
        }
    }

    /// The settings in force.
    pub fn get(&self) -> WebSettings {
        self.current.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes the settings with `f`, checks and stores them.
    pub fn update(&self, f: impl FnOnce(&mut WebSettings)) -> Result<WebSettings, SettingsError> {
        let mut guard = self
            .current
            .lock()
            .map_err(|_| SettingsError::Invalid("settings lock poisoned".to_owned()))?;
        let mut next = guard.clone();
        f(&mut next);
        if next.ntp.servers.len() > MAX_NTP_SERVERS {
            return Err(SettingsError::Invalid(format!(
                "at most {MAX_NTP_SERVERS} NTP servers"
            )));
        }
        if let Some(bad) = next.ntp.servers.iter().find(|s| !valid_host(s)) {
            return Err(SettingsError::Invalid(format!("not a host name: {bad:?}")));
        }
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        self.data.write(SETTINGS_FILE, &bytes)?;
        *guard = next.clone();
        Ok(next)
    }

    /// Back to defaults; deletes the file.
    pub fn reset(&self) {
        let _ = std::fs::remove_file(self.data.file(SETTINGS_FILE));
        if let Ok(mut g) = self.current.lock() {
            *g = WebSettings::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_reopen_and_reject_bad_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let s = SettingsStore::open(data.clone());
        s.update(|w| {
            w.network.dns = Some(Ipv4Addr::new(192, 168, 1, 1));
            w.ntp.servers = vec!["ntp.example.org".to_owned(), "10.0.0.1".to_owned()];
        })
        .unwrap();
        assert!(
            s.update(|w| w.ntp.servers = vec!["bad host".to_owned()])
                .is_err()
        );
        let again = SettingsStore::open(data);
        assert_eq!(again.get().network.dns, Some(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(again.get().ntp.servers.len(), 2);
        again.reset();
        assert_eq!(again.get(), WebSettings::default());
    }
}
