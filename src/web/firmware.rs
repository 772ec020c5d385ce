//! Firmware upload (spec ch. 8.4.1, offline update): the uploaded file is verified and staged
//! in the data directory; installing it comes with the hardware.
//!
//! A firmware file is a one-line header, a one-line JSON manifest and the image:
//!
//! ```text
//! KNX-ECHARGE-FIRMWARE 1\n
//! {"product":"knx-echarge","version":"0.2.0","size":123456,"sha256":"<64 hex digits>"}\n
//! <size bytes of image>
//! ```
//!
//! It is accepted only if the product matches, the version is *newer* than the installed one
//! (earlier versions cannot be imported), and the image has exactly the manifest's size and
//! SHA-256. The manifest only protects against damaged or mixed-up files; authenticity
//! (a signature) belongs to the hardware issue with its key storage.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::DataDir;

/// First line of a firmware file.
pub const MAGIC: &str = "KNX-ECHARGE-FIRMWARE 1";
/// Product name in the manifest.
pub const PRODUCT: &str = "knx-echarge";
/// The staged image in the data directory.
pub const STAGED_IMAGE: &str = "firmware-staged.bin";
/// The staged image's manifest in the data directory.
pub const STAGED_MANIFEST: &str = "firmware-staged.json";

/// The manifest of a firmware file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`PRODUCT`].
    pub product: String,
    /// `major.minor.patch`.
    pub version: String,
    /// Image size in bytes.
    pub size: u64,
    /// SHA-256 of the image, lower-case hex.
    pub sha256: String,
}

/// Why a firmware file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FirmwareError {
    /// Not a firmware file of this format.
    #[error("not a knx-echarge firmware file")]
    NotFirmware,
    /// The manifest is not valid.
    #[error("invalid firmware manifest: {0}")]
    Manifest(String),
    /// For another product.
    #[error("firmware is for product {0:?}, not knx-echarge")]
    WrongProduct(String),
    /// Version is not newer than the installed one.
    #[error("firmware {offered} is not newer than the installed version {installed}")]
    NotNewer {
        /// In the file.
        offered: String,
        /// Running now.
        installed: String,
    },
    /// Size or checksum differ.
    #[error("firmware image is damaged: {0}")]
    Damaged(&'static str),
    /// Staging failed.
    #[error("cannot stage the firmware: {0}")]
    Store(String),
}

/// Parses `major.minor.patch` (missing parts are 0; a pre-release suffix is ignored).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(str::parse::<u64>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().transpose().ok()?.unwrap_or(0);
    let patch = parts.next().transpose().ok()?.unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Builds a firmware file (tests and release tooling).
pub fn package(version: &str, image: &[u8]) -> Vec<u8> {
    let manifest = Manifest {
        product: PRODUCT.to_owned(),
        version: version.to_owned(),
        size: image.len() as u64,
        sha256: hex(&Sha256::digest(image)),
    };
    let mut out = format!("{MAGIC}\n").into_bytes();
    out.extend(serde_json::to_vec(&manifest).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(image);
    out
}

/// Verifies `file` against the installed version `installed`; returns the manifest and image.
pub fn verify<'a>(file: &'a [u8], installed: &str) -> Result<(Manifest, &'a [u8]), FirmwareError> {
    let rest = file
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|r| r.strip_prefix(b"\n"))
        .ok_or(FirmwareError::NotFirmware)?;
    let end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| FirmwareError::Manifest("no end of manifest line".to_owned()))?;
    let (line, image) = rest.split_at(end);
    let image = image.get(1..).unwrap_or_default();
    let manifest: Manifest =
        serde_json::from_slice(line).map_err(|e| FirmwareError::Manifest(e.to_string()))?;
    if manifest.product != PRODUCT {
        return Err(FirmwareError::WrongProduct(manifest.product));
    }
    let offered = parse_version(&manifest.version)
        .ok_or_else(|| FirmwareError::Manifest(format!("bad version {:?}", manifest.version)))?;
    let current = parse_version(installed).unwrap_or((0, 0, 0));
    if offered <= current {
        return Err(FirmwareError::NotNewer {
            offered: manifest.version,
            installed: installed.to_owned(),
        });
    }
    if image.len() as u64 != manifest.size {
        return Err(FirmwareError::Damaged("size differs from the manifest"));
    }
    if hex(&Sha256::digest(image)) != manifest.sha256.to_ascii_lowercase() {
        return Err(FirmwareError::Damaged("SHA-256 differs from the manifest"));
    }
    Ok((manifest, image))
}

/// Verifies and stages `file` in the data directory.
pub fn stage(data: &DataDir, file: &[u8], installed: &str) -> Result<Manifest, FirmwareError> {
    let (manifest, image) = verify(file, installed)?;
    data.write(STAGED_IMAGE, image)
        .map_err(|e| FirmwareError::Store(e.to_string()))?;
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| FirmwareError::Store(e.to_string()))?;
    data.write(STAGED_MANIFEST, &json)
        .map_err(|e| FirmwareError::Store(e.to_string()))?;
    Ok(manifest)
}

/// The staged firmware, if any.
pub fn staged(data: &DataDir) -> Option<Manifest> {
    let bytes = data.read(STAGED_MANIFEST).ok()??;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_newer_intact_firmware() {
        let image = b"firmware image bytes".to_vec();
        let newer = package("0.2.0", &image);
        assert_eq!(verify(&newer, "0.1.0").unwrap().0.version, "0.2.0");
        assert!(matches!(
            verify(&package("0.1.0", &image), "0.1.0"),
            Err(FirmwareError::NotNewer { .. })
        ));
        assert!(matches!(
            verify(&package("0.0.9", &image), "0.1.0"),
            Err(FirmwareError::NotNewer { .. })
        ));
        let mut damaged = newer.clone();
        if let Some(last) = damaged.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            verify(&damaged, "0.1.0").unwrap_err(),
            FirmwareError::Damaged("SHA-256 differs from the manifest")
        );
        let mut short = newer.clone();
        short.pop();
        assert!(matches!(
            verify(&short, "0.1.0"),
            Err(FirmwareError::Damaged(_))
        ));
        assert_eq!(
            verify(b"MZ\x90", "0.1.0").unwrap_err(),
            FirmwareError::NotFirmware
        );
        assert_eq!(parse_version("1.10.3-rc1"), Some((1, 10, 3)));
        assert!(parse_version("1.x").is_none());
        assert!((1, 10, 0) > parse_version("1.9.9").unwrap());
    }

    #[test]
    fn staging_writes_image_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(staged(&data).is_none());
        let m = stage(&data, &package("1.0.0", b"abc"), "0.1.0").unwrap();
        assert_eq!(staged(&data), Some(m));
        assert_eq!(data.read(STAGED_IMAGE).unwrap().unwrap(), b"abc");
    }
}
