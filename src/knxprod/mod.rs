//! The ETS product database, generated from the firmware's single sources.
//!
//! This module owns the translation of `group-objects/objects.toml` (the group-object table),
//! `etsdb/parameters.toml` (parameters, memory layout, application version, table limits) and
//! the model lists `etsdb/charger-models.toml` / `etsdb/meter-models.toml` into the XML files
//! of a KNX product database as ETS 5.7/6 imports them (KNX project schema
//! `http://knx.org/xml/project/20`):
//!
//! * the application program `M-XXXX/M-XXXX_A-AAAA-VV-0000.xml` (`app.rs`): a relative segment
//!   for the parameter memory (interface object 4 of mask MV-07B0), parameter types,
//!   parameters with their memory offsets, the group objects with sizes, flags and DPTs, the
//!   table limits, the load-procedure fragments ETS merges into the MV-07B0 procedures, and
//!   the dynamic part: one channel per charging point and `choose`/`when` for what depends
//!   on DLM, smart meter, charging-point model and retrofit meter, exactly as the firmware
//!   decides which objects exist;
//! * `M-XXXX/Hardware.xml` and `M-XXXX/Catalog.xml` (`hardware.rs`);
//! * English texts in the elements, German ones in `Languages/Language[de-DE]`.
//!
//! What it cannot produce is the signed `.knxprod`: signing needs the KNX Manufacturer Tool
//! or the ETS DLLs (README, "ETS product database"; `docs/ets-product-database.md`).
//!
//! The manufacturer id and application number come from `etsdb/parameters.toml`
//! (`[application]`, also what the device compares with PID 13). The manufacturer id there is a
//! placeholder: open-source builds use the KNX Association's id 0x00FA, as other open-source KNX
//! stacks do for uncertified devices; a manufacturer replaces it with its own before signing.

pub(crate) mod app;
mod dynamic;
mod hardware;
mod xml;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::etsdb::ParamModel;

/// The hardware's serial number in the product database (not a device serial number).
pub const HARDWARE_SERIAL: &str = "EC05";

/// The hardware's version number.
pub const HARDWARE_VERSION: u16 = 1;

/// The product's name.
pub const PRODUCT_NAME: &str = "knx-echarge gateway for 5 charging points";

/// The KNX project schema the files are written in (ETS 5.7 and later import it).
pub const SCHEMA_NAMESPACE: &str = "http://knx.org/xml/project/20";

/// The mask version: System B on TP (MV-07B0).
pub const MASK_VERSION: &str = "MV-07B0";

/// The generation failed.
#[derive(Debug, thiserror::Error)]
pub enum KnxprodError {
    /// The data files are inconsistent (a condition names a parameter that does not exist …).
    #[error("product database: {0}")]
    Model(String),
    /// Writing XML failed.
    #[error("product database: XML: {0}")]
    Xml(String),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The KNX ids of the product, all derived from the constants and the application version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `M-00FA`.
    pub manufacturer: String,
    /// `M-00FA_A-EC01-01-0000`: the application program.
    pub application: String,
    /// `M-00FA_H-EC05-1`: the hardware.
    pub hardware: String,
    /// The product of the hardware.
    pub product: String,
    /// The hardware-to-program link.
    pub hardware2program: String,
    /// The catalog section.
    pub catalog_section: String,
    /// The catalog item.
    pub catalog_item: String,
}

impl Ids {
    /// The ids of the embedded application (`etsdb/parameters.toml`).
    pub fn of_model() -> Result<Self, KnxprodError> {
        let app = &ParamModel::get().application;
        let version = app
            .version_byte()
            .ok_or_else(|| KnxprodError::Model("application version".to_owned()))?;
        Ok(Self::new(
            app.manufacturer_id,
            app.application_number,
            version,
        ))
    }

    /// The ids for manufacturer `manufacturer_id`, application `application_number` and version
    /// byte `version` (major nibble, minor nibble).
    ///
    /// KNX id rules: `M-XXXX` (manufacturer id, 4 hex digits); application
    /// `M-XXXX_A-AAAA-VV-HHHH` (application number, version, a check number that unsigned
    /// files leave 0000); hardware `M-XXXX_H-<serial>-<version>`; characters other than
    /// letters and digits inside an id part are written `.XX` (hex of the byte).
    pub fn new(manufacturer_id: u16, application_number: u16, version: u8) -> Self {
        let manufacturer = format!("M-{manufacturer_id:04X}");
        let application = format!("{manufacturer}_A-{application_number:04X}-{version:02X}-0000");
        let hardware = format!(
            "{manufacturer}_H-{}-{HARDWARE_VERSION}",
            id_part(HARDWARE_SERIAL)
        );
        let order_number = &ParamModel::get().application.order_number;
        let product = format!("{hardware}_P-{}", id_part(order_number));
        let hardware2program = format!("{hardware}_HP-{application_number:04X}-{version:02X}-0000");
        let catalog_section = format!("{manufacturer}_CS-1");
        let catalog_item = format!("{hardware2program}_CI-{}-1", id_part(order_number));
        Self {
            manufacturer,
            application,
            hardware,
            product,
            hardware2program,
            catalog_section,
            catalog_item,
        }
    }
}

/// Writes `text` as a KNX id part: letters and digits stay, every other byte becomes `.XX`.
pub fn id_part(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, ".{b:02X}");
        }
    }
    out
}

/// The generated files, by path relative to the output directory.
#[derive(Debug, Clone)]
pub struct ProductDatabase {
    /// The ids used.
    pub ids: Ids,
    /// The application version as ETS shows it, e.g. "0.1".
    pub version: String,
    /// (relative path, XML text).
    pub files: Vec<(PathBuf, String)>,
}

impl ProductDatabase {
    /// The XML of the file whose relative path ends with `name`.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .map(|(_, text)| text.as_str())
    }
}

/// Generates the product database from the embedded sources.
pub fn generate() -> Result<ProductDatabase, KnxprodError> {
    let model = ParamModel::get();
    let version = model
        .application
        .version_byte()
        .ok_or_else(|| KnxprodError::Model("application version".to_owned()))?;
    let ids = Ids::of_model()?;
    let dir = PathBuf::from(&ids.manufacturer);
    let application = app::application(&ids, version)?;
    let files = vec![
        (
            dir.join(format!("{}.xml", ids.application)),
            application.to_document()?,
        ),
        (
            dir.join("Hardware.xml"),
            hardware::hardware(&ids).to_document()?,
        ),
        (
            dir.join("Catalog.xml"),
            hardware::catalog(&ids).to_document()?,
        ),
    ];
    Ok(ProductDatabase {
        ids,
        version: model.application.version.clone(),
        files,
    })
}

/// Generates the product database into `out` (creating `out/M-XXXX/`); returns the paths.
pub fn write_to_dir(out: &Path) -> Result<Vec<PathBuf>, KnxprodError> {
    let db = generate()?;
    let mut written = Vec::new();
    for (rel, text) in &db.files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| KnxprodError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| KnxprodError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The root `KNX` element of one file with its `ManufacturerData/Manufacturer`.
fn knx_root(ids: &Ids, content: Vec<xml::Node>) -> xml::Node {
    xml::Node::new("KNX")
        .attr("xmlns", SCHEMA_NAMESPACE)
        .attr("CreatedBy", "knx-echarge")
        .attr("ToolVersion", env!("CARGO_PKG_VERSION"))
        .child(
            xml::Node::new("ManufacturerData").child(
                xml::Node::new("Manufacturer")
                    .attr("RefId", &ids.manufacturer)
                    .children(content),
            ),
        )
}

/// `Languages/Language[de-DE]/TranslationUnit` with one element per (id, attribute, text).
fn german(unit: &str, texts: &[(String, &'static str, String)]) -> xml::Node {
    let mut by_id: Vec<(String, xml::Node)> = Vec::new();
    for (id, attr, text) in texts {
        let translation = xml::Node::new("Translation")
            .attr("AttributeName", attr)
            .attr("Text", text);
        match by_id.iter_mut().find(|(i, _)| i == id) {
            Some((_, el)) => el.push(translation),
            None => by_id.push((
                id.clone(),
                xml::Node::new("TranslationElement")
                    .attr("RefId", id)
                    .child(translation),
            )),
        }
    }
    xml::Node::new("Languages").child(
        xml::Node::new("Language")
            .attr("Identifier", "de-DE")
            .child(
                xml::Node::new("TranslationUnit")
                    .attr("RefId", unit)
                    .children(by_id.into_iter().map(|(_, n)| n)),
            ),
    )
}

#[cfg(test)]
mod tests;
