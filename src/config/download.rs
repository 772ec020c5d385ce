//! The configuration ETS downloads, both ways: the device stack's raw tables
//! ([`Download`]: group address table, association table, parameter memory, application id)
//! become a [`Config`], and a [`Config`] (for example from a TOML file) becomes the
//! [`DeviceState`] a download of it would have left, so that importing a file and downloading
//! from ETS end in the same place.
//!
//! Table formats (System B; `docs/device-management.md`): group address table `u16 N` then N
//! group addresses, index i (1-based) = TSAP; association table `u16 N` then N × (`u16 TSAP`,
//! `u16 ASAP`), ASAP = group-object number, the first TSAP of an object being its sending
//! address; the parameter memory laid out as `etsdb/parameters.toml` says.

use std::collections::BTreeMap;

use super::{Config, ConfigError, file};
use crate::etsdb::{ParamError, ParamModel, ParamSet};
use crate::faults::Fault;
use crate::knx::address::{GroupAddress, IndividualAddress};
use crate::knx::device::load::Memory;
use crate::knx::device::properties::APPLICATION_OBJECT;
use crate::knx::device::{DeviceState, Download};
use crate::store::{DataDir, StoreError};
use crate::units::GoNumber;

/// The file in the data directory that holds what ETS downloaded ([`DeviceState`] as JSON).
/// It is written atomically and only on LoadCompleted, a master reset or an address change,
/// so a download interrupted at any point leaves the previous one in force.
pub const DEVICE_FILE: &str = "device.json";

/// Why a download cannot become a configuration.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The application (parameters) is not loaded: the device is unconfigured.
    #[error("no application loaded")]
    NotLoaded,
    /// A table is malformed.
    #[error("{table}: {reason}")]
    Table {
        /// Which table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The application's main version differs from the firmware's (spec 8.4.2).
    #[error("application version {found:#04x} does not match the firmware's {expected:#04x}")]
    ApplicationVersion {
        /// Version byte the firmware implements.
        expected: u8,
        /// Version byte ETS wrote (object 4, PID 13, last byte).
        found: u8,
    },
    /// The parameter memory does not decode.
    #[error("parameters: {0}")]
    Params(#[from] ParamError),
    /// The parameters do not form a configuration.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// A table does not fit the device's memory (load-state error code).
    #[error("table does not fit (error code {0})")]
    Memory(u8),
    /// Reading or writing the data directory failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The stored device state does not decode.
    #[error("device.json: {0}")]
    Decode(String),
    /// An imported TOML file is not a configuration.
    #[error("{0}")]
    Load(#[from] file::LoadError),
}

/// The device state stored in `data`, if any.
pub fn load_device_state(data: &DataDir) -> Result<Option<DeviceState>, DownloadError> {
    data.read(DEVICE_FILE)?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| DownloadError::Decode(e.to_string()))
        })
        .transpose()
}

/// Stores the device state atomically (the previous one stays if this fails half-way).
pub fn save_device_state(data: &DataDir, state: &DeviceState) -> Result<(), DownloadError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError::Encode(e.to_string()))?;
    Ok(data.write(DEVICE_FILE, &bytes)?)
}

/// The configuration ETS downloaded into `data`: `None` when nothing is stored or the
/// application is not loaded (the device is unconfigured).
pub fn downloaded_config(data: &DataDir) -> Result<Option<Config>, DownloadError> {
    let Some(state) = load_device_state(data)? else {
        return Ok(None);
    };
    match Config::from_download(&state.download(), state.address) {
        Ok(config) => Ok(Some(config)),
        Err(DownloadError::NotLoaded) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `knx-echarge export-config`: the downloaded configuration as TOML.
pub fn export_toml(data: &DataDir) -> Result<String, DownloadError> {
    let config = downloaded_config(data)?.ok_or(DownloadError::NotLoaded)?;
    Ok(file::to_string(&config)?)
}

/// `knx-echarge import-config`: a TOML configuration stored as if ETS had downloaded it.
/// Returns its configuration faults (it is stored even with faults, as a download would be).
pub fn import_toml(text: &str, origin: &str, data: &DataDir) -> Result<Vec<Fault>, DownloadError> {
    let config = file::parse(text, origin)?;
    let state = config.to_device_state()?;
    save_device_state(data, &state)?;
    Ok(super::validate::validate(&config))
}

fn table_error(table: &'static str, reason: impl Into<String>) -> DownloadError {
    DownloadError::Table {
        table,
        reason: reason.into(),
    }
}

/// Splits a table into its `u16` count and the `u16` words after it.
fn words(table: &'static str, bytes: &[u8], per_entry: usize) -> Result<Vec<u16>, DownloadError> {
    let (count, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| table_error(table, "shorter than its count"))?;
    let count = usize::from(u16::from_be_bytes(*count));
    let needed = count * per_entry * 2;
    let body = rest
        .get(..needed)
        .ok_or_else(|| table_error(table, format!("{count} entries do not fit")))?;
    Ok(body
        .chunks_exact(2)
        .filter_map(|w| <[u8; 2]>::try_from(w).ok())
        .map(u16::from_be_bytes)
        .collect())
}

/// The group addresses of every object from the group address and association tables.
pub fn group_addresses(
    address_table: &[u8],
    association_table: &[u8],
) -> Result<BTreeMap<GoNumber, Vec<GroupAddress>>, DownloadError> {
    let addresses = words("group address table", address_table, 1)?;
    let associations = words("association table", association_table, 2)?;
    let mut map: BTreeMap<GoNumber, Vec<GroupAddress>> = BTreeMap::new();
    for pair in associations.chunks_exact(2) {
        let Ok([tsap, asap]) = <[u16; 2]>::try_from(pair) else {
            continue;
        };
        let address = usize::from(tsap)
            .checked_sub(1)
            .and_then(|i| addresses.get(i))
            .ok_or_else(|| {
                table_error(
                    "association table",
                    format!("TSAP {tsap} is not in the address table"),
                )
            })?;
        let list = map.entry(GoNumber(asap)).or_default();
        let ga = GroupAddress::from_raw(*address);
        if !list.contains(&ga) {
            list.push(ga);
        }
    }
    Ok(map)
}

/// The group address and association tables ETS would download for `map` (addresses sorted,
/// each object's sending address first).
pub fn tables(map: &BTreeMap<GoNumber, Vec<GroupAddress>>) -> (Vec<u8>, Vec<u8>) {
    let mut addresses: Vec<GroupAddress> = map.values().flatten().copied().collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut address_table = Vec::with_capacity(2 + 2 * addresses.len());
    address_table.extend(u16::try_from(addresses.len()).unwrap_or(0).to_be_bytes());
    for ga in &addresses {
        address_table.extend(ga.raw().to_be_bytes());
    }
    let mut pairs = Vec::new();
    for (go, list) in map {
        for ga in list {
            if let Ok(i) = addresses.binary_search(ga) {
                pairs.push((u16::try_from(i + 1).unwrap_or(0), go.0));
            }
        }
    }
    let mut association_table = Vec::with_capacity(2 + 4 * pairs.len());
    association_table.extend(u16::try_from(pairs.len()).unwrap_or(0).to_be_bytes());
    for (tsap, asap) in pairs {
        association_table.extend(tsap.to_be_bytes());
        association_table.extend(asap.to_be_bytes());
    }
    (address_table, association_table)
}

/// The application id an import writes, as ETS would for the product database generated
/// from the same `etsdb/parameters.toml` (manufacturer id, application number, version).
fn application_id() -> [u8; 5] {
    let app = &ParamModel::get().application;
    app.id_bytes()
        .unwrap_or([0, 0, 0, 0, app.version_byte().unwrap_or(0)])
}

impl Config {
    /// The configuration a completed download describes. Unloaded links mean no links.
    pub fn from_download(
        download: &Download,
        individual_address: IndividualAddress,
    ) -> Result<Self, DownloadError> {
        let parameters = download
            .parameters
            .as_deref()
            .ok_or(DownloadError::NotLoaded)?;
        let expected = ParamModel::get().application.version_byte().unwrap_or(0);
        let found = download.application_id[4];
        if found >> 4 != expected >> 4 {
            return Err(DownloadError::ApplicationVersion { expected, found });
        }
        let params = ParamSet::from_memory(parameters)?;
        let links = match (&download.address_table, &download.association_table) {
            (Some(addresses), Some(associations)) => group_addresses(addresses, associations)?,
            _ => BTreeMap::new(),
        };
        Ok(Self::from_params(&params, individual_address, links)?)
    }

    /// The device state a download of this configuration leaves (import).
    pub fn to_device_state(&self) -> Result<DeviceState, DownloadError> {
        let (address_table, association_table) = tables(&self.group_addresses);
        let parameters = self.to_params()?.to_memory();
        let mut memory = Memory::default();
        // The group object table: no descriptors, as the firmware builds its own table.
        let objects = [0u8, 0];
        for (index, bytes) in [
            (1, &address_table[..]),
            (2, &association_table[..]),
            (3, &objects[..]),
            (APPLICATION_OBJECT, &parameters[..]),
        ] {
            memory
                .install(index, bytes)
                .map_err(DownloadError::Memory)?;
        }
        Ok(DeviceState {
            address: self.knx.individual_address,
            memory,
            application_id: application_id(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knx::device::{Device, Identity};

    fn ga(s: &str) -> GroupAddress {
        s.parse().unwrap()
    }

    #[test]
    fn several_addresses_per_object_first_sends() {
        // Addresses 1/0/1, 1/0/2, 1/0/3; object 1 listens to 1/0/2 (sends) and 1/0/1.
        let addresses = [0, 3, 0x08, 0x01, 0x08, 0x02, 0x08, 0x03];
        let associations = [0, 3, 0, 2, 0, 1, 0, 1, 0, 1, 0, 3, 0, 50];
        let map = group_addresses(&addresses, &associations).unwrap();
        assert_eq!(map[&GoNumber(1)], vec![ga("1/0/2"), ga("1/0/1")]);
        assert_eq!(map[&GoNumber(50)], vec![ga("1/0/3")]);
    }

    #[test]
    fn malformed_tables_are_errors() {
        assert!(group_addresses(&[], &[0, 0]).is_err());
        assert!(group_addresses(&[0, 5, 1, 2], &[0, 0]).is_err());
        assert!(group_addresses(&[0, 1, 8, 1], &[0, 1, 0, 2, 0, 1]).is_err());
        assert!(group_addresses(&[0, 1, 8, 1], &[0, 1, 0, 0, 0, 1]).is_err());
        assert_eq!(group_addresses(&[0, 0], &[0, 0]).unwrap(), BTreeMap::new());
    }

    #[test]
    fn import_and_download_agree() {
        let mut config = Config::defaults();
        config.knx.individual_address = IndividualAddress::new(1, 1, 10).unwrap();
        config
            .group_addresses
            .insert(GoNumber(1), vec![ga("1/0/2"), ga("1/0/1")]);
        config
            .group_addresses
            .insert(GoNumber(51), vec![ga("2/0/1")]);
        config.dlm.enabled = !config.dlm.enabled;
        let state = config.to_device_state().unwrap();
        let device = Device::new(
            Identity {
                serial_number: [0; 6],
                manufacturer_id: 0,
                order_info: [0; 10],
                hardware_type: [0; 6],
                firmware_version: [0; 2],
            },
            state,
        );
        let back = Config::from_download(&device.download(), device.address()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn export_import_through_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(downloaded_config(&data).unwrap().is_none());
        assert!(matches!(export_toml(&data), Err(DownloadError::NotLoaded)));
        let mut config = Config::defaults();
        config.knx.individual_address = IndividualAddress::new(1, 1, 20).unwrap();
        config
            .group_addresses
            .insert(GoNumber(2), vec![ga("3/1/7")]);
        let text = file::to_string(&config).unwrap();
        import_toml(&text, "test", &data).unwrap();
        assert_eq!(downloaded_config(&data).unwrap(), Some(config.clone()));
        let exported = export_toml(&data).unwrap();
        assert_eq!(file::parse(&exported, "export").unwrap(), config);
        // A broken file is an error, not a panic, and not taken for a configuration.
        data.write(DEVICE_FILE, b"{").unwrap();
        assert!(downloaded_config(&data).is_err());
    }

    #[test]
    fn unloaded_application_or_wrong_version_is_refused() {
        let mut download = Config::defaults()
            .to_device_state()
            .map(|s| {
                let mut d = Download {
                    address_table: None,
                    association_table: None,
                    group_object_table: None,
                    parameters: s.memory.tables[4].loaded().map(<[u8]>::to_vec),
                    application_id: s.application_id,
                };
                d.application_id[4] = 0xF0;
                d
            })
            .unwrap();
        assert!(matches!(
            Config::from_download(&download, IndividualAddress::UNCONFIGURED),
            Err(DownloadError::ApplicationVersion { .. })
        ));
        download.parameters = None;
        assert!(matches!(
            Config::from_download(&download, IndividualAddress::UNCONFIGURED),
            Err(DownloadError::NotLoaded)
        ));
    }
}
