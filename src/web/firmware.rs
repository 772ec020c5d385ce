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
//! SHA-256. The manifest is read strictly: no unknown keys, a version of exactly three
//! decimal numbers up to [`VERSION_PART_MAX`], a 64-digit hex SHA-256, a size up to
//! [`MAX_IMAGE_BYTES`].
//!
//! An upload is streamed ([`Receiver`]) into a uniquely named temporary file in the data
//! directory (`.firmware-upload-*.part`), checked while it arrives, and only then renamed to
//! [`STAGED_IMAGE`]; the manifest is removed before and written after, so
//! [`STAGED_MANIFEST`], when present, always describes the staged image. One upload runs at a
//! time (the website answers `409` to a second). Temporary files of an upload interrupted by
//! a crash are deleted at the next start ([`clean_leftovers`]). The manifest only protects against damaged or mixed-up files; authenticity
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
#[serde(deny_unknown_fields)]
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

/// Largest number in one part of a version.
pub const VERSION_PART_MAX: u32 = 9999;

/// Largest image a manifest may announce.
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Longest manifest line.
pub const MAX_MANIFEST_BYTES: usize = 1024;

/// Parses a version: exactly `major.minor.patch`, decimal digits only, each part at most
/// [`VERSION_PART_MAX`] and without leading zeros; nothing else (no suffix, no sign, no
/// path characters).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| {
        let digits = !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        let canonical = p == "0" || !p.starts_with('0');
        (digits && canonical)
            .then(|| p.parse::<u32>().ok())
            .flatten()
            .filter(|n| *n <= VERSION_PART_MAX)
    });
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next()??;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// Checks a manifest's fields (apart from the version's order against the installed one).
pub fn check_manifest(manifest: &Manifest) -> Result<(u32, u32, u32), FirmwareError> {
    if manifest.product != PRODUCT {
        return Err(FirmwareError::WrongProduct(
            manifest.product.chars().take(40).collect(),
        ));
    }
    let version = parse_version(&manifest.version).ok_or_else(|| {
        FirmwareError::Manifest(format!(
            "bad version {:?}: must be major.minor.patch, numbers up to {VERSION_PART_MAX}",
            manifest.version.chars().take(40).collect::<String>()
        ))
    })?;
    if manifest.size > MAX_IMAGE_BYTES {
        return Err(FirmwareError::Manifest(format!(
            "image size {} above the limit of {MAX_IMAGE_BYTES} bytes",
            manifest.size
        )));
    }
    if manifest.sha256.len() != 64 || !manifest.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FirmwareError::Manifest(
            "sha256 must be 64 hex digits".to_owned(),
        ));
    }
    Ok(version)
}

/// The header and manifest at the start of `file`: the manifest and where the image starts.
/// `Ok(None)`: not enough bytes yet.
fn parse_head(file: &[u8]) -> Result<Option<(Manifest, usize)>, FirmwareError> {
    let magic = format!("{MAGIC}\n");
    let have = file.len().min(magic.len());
    if file.get(..have) != magic.as_bytes().get(..have) {
        return Err(FirmwareError::NotFirmware);
    }
    let Some(rest) = file.get(magic.len()..) else {
        return Ok(None);
    };
    let Some(end) = rest
        .iter()
        .take(MAX_MANIFEST_BYTES + 1)
        .position(|b| *b == b'\n')
    else {
        return if rest.len() > MAX_MANIFEST_BYTES {
            Err(FirmwareError::Manifest("manifest line too long".to_owned()))
        } else {
            Ok(None)
        };
    };
    let line = rest.get(..end).unwrap_or_default();
    let manifest: Manifest =
        serde_json::from_slice(line).map_err(|e| FirmwareError::Manifest(e.to_string()))?;
    Ok(Some((manifest, magic.len() + end + 1)))
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
    let (manifest, at) = match parse_head(file)? {
        Some(head) => head,
        None if file.len() <= MAGIC.len() => return Err(FirmwareError::NotFirmware),
        None => {
            return Err(FirmwareError::Manifest(
                "no end of manifest line".to_owned(),
            ));
        }
    };
    check_version(&manifest, installed)?;
    let image = file.get(at..).unwrap_or_default();
    if image.len() as u64 != manifest.size {
        return Err(FirmwareError::Damaged("size differs from the manifest"));
    }
    if hex(&Sha256::digest(image)) != manifest.sha256.to_ascii_lowercase() {
        return Err(FirmwareError::Damaged("SHA-256 differs from the manifest"));
    }
    Ok((manifest, image))
}

/// Checks the manifest and that its version is newer than `installed`.
fn check_version(manifest: &Manifest, installed: &str) -> Result<(), FirmwareError> {
    let offered = check_manifest(manifest)?;
    let current = parse_version(installed).unwrap_or((0, 0, 0));
    if offered <= current {
        return Err(FirmwareError::NotNewer {
            offered: manifest.version.clone(),
            installed: installed.to_owned(),
        });
    }
    Ok(())
}

/// Verifies and stages a whole `file` in the data directory.
pub fn stage(data: &DataDir, file: &[u8], installed: &str) -> Result<Manifest, FirmwareError> {
    let mut receiver = Receiver::new(data, installed)?;
    receiver.push(file)?;
    receiver.finish()
}

/// Prefix of the temporary files of uploads.
const UPLOAD_PREFIX: &str = ".firmware-upload-";

/// An upload being received: the head is parsed as soon as it is complete, the image is
/// hashed and written to a temporary file as it arrives, and refused as soon as it is longer
/// than its manifest says.
#[derive(Debug)]
pub struct Receiver {
    data: DataDir,
    installed: String,
    head: Vec<u8>,
    manifest: Option<Manifest>,
    hasher: Sha256,
    received: u64,
    temp: std::path::PathBuf,
    file: Option<std::fs::File>,
}

fn store_error(e: &std::io::Error) -> FirmwareError {
    FirmwareError::Store(e.to_string())
}

impl Receiver {
    /// A new upload into a fresh temporary file in `data`.
    pub fn new(data: &DataDir, installed: &str) -> Result<Self, FirmwareError> {
        let temp = data.file(&format!(
            "{UPLOAD_PREFIX}{}.part",
            crate::web::auth::token()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| store_error(&e))?;
        Ok(Self {
            data: data.clone(),
            installed: installed.to_owned(),
            head: Vec::new(),
            manifest: None,
            hasher: Sha256::new(),
            received: 0,
            temp,
            file: Some(file),
        })
    }

    /// Takes the next part of the upload.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), FirmwareError> {
        if self.manifest.is_none() {
            let take = chunk.len().min(MAGIC.len() + 2 + MAX_MANIFEST_BYTES);
            self.head
                .extend_from_slice(chunk.get(..take).unwrap_or_default());
            match parse_head(&self.head)? {
                None if take < chunk.len() => {
                    return Err(FirmwareError::Manifest("manifest line too long".to_owned()));
                }
                None => return Ok(()),
                Some((manifest, at)) => {
                    check_version(&manifest, &self.installed)?;
                    let used_before = self.head.len() - take;
                    let skip = at.saturating_sub(used_before);
                    chunk = chunk.get(skip..).unwrap_or_default();
                    self.manifest = Some(manifest);
                    self.head = Vec::new();
                }
            }
        }
        let expected = self.manifest.as_ref().map_or(0, |m| m.size);
        self.received += chunk.len() as u64;
        if self.received > expected {
            return Err(FirmwareError::Damaged(
                "image longer than the manifest says",
            ));
        }
        self.hasher.update(chunk);
        if let Some(file) = self.file.as_mut() {
            std::io::Write::write_all(file, chunk).map_err(|e| store_error(&e))?;
        }
        Ok(())
    }

    /// The upload is complete: checks size and checksum and stages the image and manifest.
    pub fn finish(mut self) -> Result<Manifest, FirmwareError> {
        let Some(manifest) = self.manifest.take() else {
            return Err(if self.head.len() <= MAGIC.len() {
                FirmwareError::NotFirmware
            } else {
                FirmwareError::Manifest("no end of manifest line".to_owned())
            });
        };
        if self.received != manifest.size {
            return Err(FirmwareError::Damaged("size differs from the manifest"));
        }
        let digest = hex(&std::mem::take(&mut self.hasher).finalize());
        if digest != manifest.sha256.to_ascii_lowercase() {
            return Err(FirmwareError::Damaged("SHA-256 differs from the manifest"));
        }
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(|e| store_error(&e))?;
        }
        // The manifest goes first and comes back last: whenever it exists, it describes the
        // image next to it.
        match std::fs::remove_file(self.data.file(STAGED_MANIFEST)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(store_error(&e)),
            _ => {}
        }
        std::fs::rename(&self.temp, self.data.file(STAGED_IMAGE)).map_err(|e| store_error(&e))?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| FirmwareError::Store(e.to_string()))?;
        self.data
            .write(STAGED_MANIFEST, &json)
            .map_err(|e| FirmwareError::Store(e.to_string()))?;
        Ok(manifest)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Refused or abandoned (or renamed: then this finds nothing).
        drop(self.file.take());
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Deletes what uploads interrupted by a crash or power loss left in `data`: their temporary
/// files, and temporary files of the staged image and manifest. Returns how many.
pub fn clean_leftovers(data: &DataDir) -> usize {
    let Ok(entries) = std::fs::read_dir(data.path()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let leftover = name.starts_with(UPLOAD_PREFIX)
            || name.starts_with(&format!(".{STAGED_IMAGE}.tmp-"))
            || name.starts_with(&format!(".{STAGED_MANIFEST}.tmp-"));
        if leftover && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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
        assert_eq!(parse_version("1.10.3"), Some((1, 10, 3)));
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

    #[test]
    fn versions_are_parsed_strictly() {
        for bad in [
            "18446744073709551615.0.0",
            "1.0.0-../../etc/passwd",
            "1.0.0-rc1",
            "1.0",
            "1",
            "1.0.0.0",
            "01.0.0",
            "+1.0.0",
            "1..0",
            "10000.0.0",
            "1.0.0/",
            " 1.0.0",
            "",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
            let file = package(bad, b"x");
            assert!(
                matches!(verify(&file, "0.1.0"), Err(FirmwareError::Manifest(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_version("9999.0.10"), Some((9999, 0, 10)));
    }

    #[test]
    fn unknown_manifest_keys_are_refused() {
        let image = b"abc";
        let file = String::from_utf8(package("1.0.0", image)).unwrap();
        let extra = file.replacen("{\"product\"", "{\"path\":\"../x\",\"product\"", 1);
        assert!(matches!(
            verify(extra.as_bytes(), "0.1.0"),
            Err(FirmwareError::Manifest(_))
        ));
    }

    #[test]
    fn a_streamed_upload_in_any_chunking_stages_the_same_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let image: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let file = package("2.0.0", &image);
        for size in [1, 7, 100, 4096, file.len()] {
            let mut r = Receiver::new(&data, "0.1.0").unwrap();
            for chunk in file.chunks(size) {
                r.push(chunk).unwrap();
            }
            assert_eq!(r.finish().unwrap().version, "2.0.0");
            assert_eq!(data.read(STAGED_IMAGE).unwrap().unwrap(), image);
        }
        // Too long: refused while streaming; the temporary file goes with the receiver.
        let mut long = file.clone();
        long.push(0);
        let mut r = Receiver::new(&data, "0.1.0").unwrap();
        assert!(matches!(r.push(&long), Err(FirmwareError::Damaged(_))));
        drop(r);
        let names: Vec<String> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        std::fs::write(data.file(".firmware-upload-abc.part"), b"x").unwrap();
        std::fs::write(data.file(".firmware-staged.bin.tmp-1"), b"x").unwrap();
        assert_eq!(clean_leftovers(&data), 2);
    }
}
