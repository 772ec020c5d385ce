//! The load-state machine of a System B table object (PID_LOAD_STATE_CONTROL, PID 5) and the
//! relative memory its segments live in.
//!
//! Sources: KNX 03.05.01 (resources) §4.19 "Load State Machine"; the state/event table as
//! thelsing/knx `src/knx/table_object.cpp` implements it; the 10-byte `LoadControl_Bcu2`
//! write and the Data Relative Allocation (additional load control type 0x0B) as ETS sends them
//! for MV-07B0 (`knx_master.xml`, `MaskVersion Id="MV-07B0"`, `LdCtrlRelSegment`).
//!
//! | state \ event | 1 start | 2 complete | 3 additional control | 4 unload | other |
//! |---|---|---|---|---|---|
//! | Unloaded | → Loading | – | – | – | → Error (14) |
//! | Loading | – | → Loaded | allocate (only 0x0B, else → Error 11) | → Unloaded | → Error (14) |
//! | Loaded | → Loading | – | → Error (11) | → Unloaded, memory freed | → Error (14) |
//! | Error | – | – | – | → Unloaded | → Error (14) |
//!
//! Memory: one 16-bit relative address space from [`MEMORY_BASE`] to [`MEMORY_END`]; each
//! table object owns at most one segment, placed first-fit. A_Memory_Write may only touch the
//! segment of an object that is Loading, entirely inside it; anything else is refused with an
//! error and changes nothing.

use std::fmt;

/// First relative address handed out.
pub const MEMORY_BASE: u16 = 0x4000;
/// End (exclusive) of the relative address space handed out (16 KiB in all).
pub const MEMORY_END: u32 = 0x8000;

/// Load state (PID 5 read value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LoadState {
    /// 0: nothing loaded.
    Unloaded,
    /// 1: loaded and in use.
    Loaded,
    /// 2: ETS is loading.
    Loading,
    /// 3: a load command failed.
    Error,
}

impl LoadState {
    /// The byte PID 5 reads as.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unloaded => 0,
            Self::Loaded => 1,
            Self::Loading => 2,
            Self::Error => 3,
        }
    }
}

/// Error codes of PID_ERROR_CODE (PID 28), KNX 03.07.03 `ErrorCode` (the ones used here).
pub mod error_code {
    /// No fault.
    pub const NO_FAULT: u8 = 0;
    /// Not enough memory for the requested segment.
    pub const INSUFFICIENT_NON_VOLATILE_MEMORY: u8 = 6;
    /// A memory allocation with size 0.
    pub const ALLOCATION_SIZE_0: u8 = 8;
    /// An additional load control other than Data Relative Allocation, or in the wrong state.
    pub const INVALID_OPCODE: u8 = 11;
    /// An undefined load event.
    pub const UNDEFINED_LOAD_COMMAND: u8 = 14;
}

/// Additional load control type "Data Relative Allocation".
pub const DATA_RELATIVE_ALLOCATION: u8 = 0x0B;

/// Why a memory access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The range is not inside one allocated segment.
    #[error("{len} bytes at {address:#06x} are outside every segment")]
    OutOfSegment {
        /// Start address.
        address: u16,
        /// Length.
        len: usize,
    },
    /// The segment's object is not Loading, so it may not be written.
    #[error("segment at {address:#06x} is not being loaded")]
    NotLoading {
        /// Start address.
        address: u16,
    },
}

/// One table object's load state and memory segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableState {
    /// The load state.
    pub state: LoadState,
    /// PID 28.
    pub error_code: u8,
    /// Start of the segment (PID 7) and its bytes.
    pub segment: Option<(u16, Vec<u8>)>,
}

impl Default for TableState {
    fn default() -> Self {
        Self {
            state: LoadState::Unloaded,
            error_code: error_code::NO_FAULT,
            segment: None,
        }
    }
}

impl TableState {
    /// PID 7: the segment's start while Loaded or Loading, otherwise 0.
    pub fn table_reference(&self) -> u32 {
        match (&self.segment, self.state) {
            (Some((start, _)), LoadState::Loaded | LoadState::Loading) => u32::from(*start),
            _ => 0,
        }
    }

    /// PID 27 (MCB): segment size u32, CRC control 0, access 0xFF, CRC-16-CCITT; only Loaded.
    pub fn mcb(&self) -> Option<[u8; 8]> {
        let (_, data) = self.segment.as_ref()?;
        if self.state != LoadState::Loaded {
            return None;
        }
        let [s0, s1, s2, s3] = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
        let [c0, c1] = crc16_ccitt(data).to_be_bytes();
        Some([s0, s1, s2, s3, 0x00, 0xFF, c0, c1])
    }

    /// The loaded bytes (only while Loaded).
    pub fn loaded(&self) -> Option<&[u8]> {
        match (&self.segment, self.state) {
            (Some((_, data)), LoadState::Loaded) => Some(data),
            _ => None,
        }
    }
}

/// CRC-16-CCITT (polynomial 0x1021, initial value 0x1D0F, no reflection) as the MCB carries
/// it; thelsing/knx gives `9795` for the bytes 01..08 (the E2E vector in the tests).
pub fn crc16_ccitt(data: &[u8]) -> u16 {
    let mut crc: u16 = 0x1D0F;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// What a load-control write did, for the device to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Nothing that changes the configuration.
    Unchanged,
    /// The object became Loaded.
    Completed,
    /// The object was unloaded.
    Unloaded,
}

/// The table objects' states and the memory they share.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    /// Indexed by interface object index (1..=4 are used; 0 is the device object).
    pub tables: [TableState; 5],
}

impl fmt::Display for LoadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unloaded => "unloaded",
            Self::Loaded => "loaded",
            Self::Loading => "loading",
            Self::Error => "error",
        })
    }
}

impl Memory {
    /// The table object `index`, if it is one.
    pub fn table(&self, index: u8) -> Option<&TableState> {
        self.tables.get(usize::from(index)).filter(|_| index >= 1)
    }

    fn table_mut(&mut self, index: u8) -> Option<&mut TableState> {
        self.tables
            .get_mut(usize::from(index))
            .filter(|_| index >= 1)
    }

    /// Applies a PID 5 write (the 10-byte LoadControl) to object `index`. Never panics; a
    /// malformed command puts the object into Error.
    pub fn load_control(&mut self, index: u8, data: &[u8]) -> LoadOutcome {
        let event = data.first().copied().unwrap_or(0xFF);
        let allocation = self.allocation_request(index, data);
        let Some(t) = self.table_mut(index) else {
            return LoadOutcome::Unchanged;
        };
        let fail = |t: &mut TableState, code| {
            t.state = LoadState::Error;
            t.error_code = code;
            LoadOutcome::Unchanged
        };
        match (t.state, event) {
            (LoadState::Unloaded | LoadState::Loaded, 1) => {
                t.state = LoadState::Loading;
                t.error_code = error_code::NO_FAULT;
                LoadOutcome::Unchanged
            }
            (LoadState::Loading, 2) => {
                t.state = LoadState::Loaded;
                LoadOutcome::Completed
            }
            (LoadState::Loading, 3) => match allocation {
                Ok(start) => {
                    let size = alloc_size(data);
                    let fill = if data.get(6) == Some(&1) {
                        data.get(7).copied().unwrap_or(0)
                    } else {
                        0
                    };
                    t.segment = Some((start, vec![fill; size]));
                    LoadOutcome::Unchanged
                }
                Err(code) => fail(t, code),
            },
            (LoadState::Loaded, 3) => fail(t, error_code::INVALID_OPCODE),
            (LoadState::Loading | LoadState::Loaded | LoadState::Error, 4) => {
                t.state = LoadState::Unloaded;
                t.segment = None;
                t.error_code = error_code::NO_FAULT;
                LoadOutcome::Unloaded
            }
            // 0 is NOOP; the other defined events are ignored in these states.
            (_, 0..=4) => LoadOutcome::Unchanged,
            _ => fail(t, error_code::UNDEFINED_LOAD_COMMAND),
        }
    }

    /// Where a Data Relative Allocation in `data` would go (first fit, other objects'
    /// segments excluded), or the error code.
    fn allocation_request(&self, index: u8, data: &[u8]) -> Result<u16, u8> {
        if data.get(1) != Some(&DATA_RELATIVE_ALLOCATION) || data.len() < 8 {
            return Err(error_code::INVALID_OPCODE);
        }
        let size = alloc_size(data);
        if size == 0 {
            return Err(error_code::ALLOCATION_SIZE_0);
        }
        let mut used: Vec<(u32, u32)> = self
            .tables
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != usize::from(index))
            .filter_map(|(_, t)| t.segment.as_ref())
            .map(|(start, d)| {
                let start = u32::from(*start);
                (start, start + u32::try_from(d.len()).unwrap_or(u32::MAX))
            })
            .collect();
        used.sort_unstable();
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let mut candidate = u32::from(MEMORY_BASE);
        for (start, end) in used {
            if candidate.saturating_add(size) <= start {
                break;
            }
            candidate = candidate.max(end);
        }
        if candidate.saturating_add(size) <= MEMORY_END {
            u16::try_from(candidate).map_err(|_| error_code::INSUFFICIENT_NON_VOLATILE_MEMORY)
        } else {
            Err(error_code::INSUFFICIENT_NON_VOLATILE_MEMORY)
        }
    }

    fn find(&self, address: u16, len: usize) -> Option<(usize, usize)> {
        let start = usize::from(address);
        let end = start.checked_add(len)?;
        self.tables.iter().enumerate().find_map(|(i, t)| {
            let (seg, data) = t.segment.as_ref()?;
            let seg = usize::from(*seg);
            (start >= seg && end <= seg + data.len()).then(|| (i, start - seg))
        })
    }

    /// A_Memory_Read: `len` bytes at `address`, all inside one segment.
    pub fn read(&self, address: u16, len: usize) -> Result<&[u8], MemoryError> {
        let refused = MemoryError::OutOfSegment { address, len };
        let (i, offset) = self.find(address, len).ok_or(refused)?;
        let (_, data) = self
            .tables
            .get(i)
            .and_then(|t| t.segment.as_ref())
            .ok_or(refused)?;
        data.get(offset..offset + len).ok_or(refused)
    }

    /// A_Memory_Write: `bytes` at `address`, inside the segment of an object being loaded.
    pub fn write(&mut self, address: u16, bytes: &[u8]) -> Result<(), MemoryError> {
        let refused = MemoryError::OutOfSegment {
            address,
            len: bytes.len(),
        };
        let (i, offset) = self.find(address, bytes.len()).ok_or(refused)?;
        let t = self.tables.get_mut(i).ok_or(refused)?;
        if t.state != LoadState::Loading {
            return Err(MemoryError::NotLoading { address });
        }
        let (_, data) = t.segment.as_mut().ok_or(refused)?;
        data.get_mut(offset..offset + bytes.len())
            .ok_or(refused)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Puts `bytes` into object `index` as if ETS had loaded them (Unload, Load, Data Relative
    /// Allocation, memory writes, LoadCompleted); used to import a configuration. Returns the
    /// error code when the bytes do not fit.
    pub fn install(&mut self, index: u8, bytes: &[u8]) -> Result<(), u8> {
        self.unload(index);
        let [a, b, c, d] = u32::try_from(bytes.len())
            .map_err(|_| error_code::INSUFFICIENT_NON_VOLATILE_MEMORY)?
            .to_be_bytes();
        self.load_control(index, &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        self.load_control(
            index,
            &[3, DATA_RELATIVE_ALLOCATION, a, b, c, d, 0, 0, 0, 0],
        );
        let t = self.table_mut(index).ok_or(error_code::INVALID_OPCODE)?;
        match (&mut t.segment, t.state) {
            (Some((_, data)), LoadState::Loading) => data.copy_from_slice(bytes),
            _ => return Err(t.error_code),
        }
        t.state = LoadState::Loaded;
        Ok(())
    }

    /// Unloads object `index` (master reset).
    pub fn unload(&mut self, index: u8) {
        if let Some(t) = self.table_mut(index) {
            *t = TableState::default();
        }
    }
}

fn alloc_size(data: &[u8]) -> usize {
    match data.get(2..6) {
        Some(&[a, b, c, d]) => usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNLOAD: [u8; 10] = [4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const START: [u8; 10] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const COMPLETE: [u8; 10] = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn alloc(size: u32) -> [u8; 10] {
        let [a, b, c, d] = size.to_be_bytes();
        [3, 0x0B, a, b, c, d, 0, 0, 0, 0]
    }

    #[test]
    fn mcb_crc_matches_the_reference_device() {
        // thelsing/knx answered 0000000800ff9795 for the 8 bytes 01..08.
        assert_eq!(crc16_ccitt(&[1, 2, 3, 4, 5, 6, 7, 8]), 0x9795);
    }

    #[test]
    fn full_load_cycle() {
        let mut m = Memory::default();
        assert_eq!(m.load_control(4, &UNLOAD), LoadOutcome::Unchanged);
        assert_eq!(m.load_control(4, &START), LoadOutcome::Unchanged);
        assert_eq!(m.tables[4].state, LoadState::Loading);
        m.load_control(4, &alloc(8));
        let start = u16::try_from(m.tables[4].table_reference()).unwrap();
        assert_eq!(start, MEMORY_BASE);
        m.write(start, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(m.tables[4].mcb(), None);
        assert_eq!(m.load_control(4, &COMPLETE), LoadOutcome::Completed);
        assert_eq!(
            m.tables[4].mcb(),
            Some([0, 0, 0, 8, 0x00, 0xFF, 0x97, 0x95])
        );
        assert_eq!(m.read(start + 2, 3).unwrap(), &[3, 4, 5]);
        // A second object is placed after the first.
        m.load_control(1, &START);
        m.load_control(1, &alloc(4));
        assert_eq!(m.tables[1].table_reference(), u32::from(start) + 8);
    }

    #[test]
    fn writes_outside_the_segment_or_while_loaded_are_refused() {
        let mut m = Memory::default();
        m.load_control(1, &START);
        m.load_control(1, &alloc(4));
        let start = MEMORY_BASE;
        assert!(m.write(start + 2, &[0; 3]).is_err());
        assert!(m.write(start - 1, &[0; 2]).is_err());
        assert!(m.write(u16::MAX, &[0; 2]).is_err());
        assert_eq!(m.tables[1].segment.as_ref().unwrap().1, vec![0; 4]);
        m.load_control(1, &COMPLETE);
        assert_eq!(
            m.write(start, &[1]),
            Err(MemoryError::NotLoading { address: start })
        );
        assert!(m.read(start, 5).is_err());
    }

    #[test]
    fn bad_commands_give_error_states() {
        let mut m = Memory::default();
        m.load_control(2, &[9]);
        assert_eq!(m.tables[2].state, LoadState::Error);
        assert_eq!(m.tables[2].error_code, error_code::UNDEFINED_LOAD_COMMAND);
        m.load_control(2, &UNLOAD);
        assert_eq!(m.tables[2].state, LoadState::Unloaded);
        m.load_control(2, &START);
        m.load_control(2, &[3, 0x0A, 0, 0, 0, 4, 0, 0, 0, 0]);
        assert_eq!(m.tables[2].error_code, error_code::INVALID_OPCODE);
        m.load_control(2, &UNLOAD);
        m.load_control(2, &START);
        m.load_control(2, &alloc(0x10_0000));
        assert_eq!(
            m.tables[2].error_code,
            error_code::INSUFFICIENT_NON_VOLATILE_MEMORY
        );
        // Device object and unknown objects: nothing happens, nothing panics.
        assert_eq!(m.load_control(0, &START), LoadOutcome::Unchanged);
        assert_eq!(m.load_control(200, &START), LoadOutcome::Unchanged);
        assert_eq!(m.load_control(1, &[]), LoadOutcome::Unchanged);
    }

    #[test]
    fn install_loads_in_one_step() {
        let mut m = Memory::default();
        m.install(2, &[0, 1, 0, 1, 0, 7]).unwrap();
        assert_eq!(m.tables[2].loaded(), Some(&[0, 1, 0, 1, 0, 7][..]));
        assert!(m.install(9, &[1]).is_err());
        assert!(m.install(1, &[]).is_err());
    }

    #[test]
    fn fill_mode_fills_the_segment() {
        let mut m = Memory::default();
        m.load_control(3, &START);
        m.load_control(3, &[3, 0x0B, 0, 0, 0, 3, 1, 0xAA, 0, 0]);
        assert_eq!(m.tables[3].segment.as_ref().unwrap().1, vec![0xAA; 3]);
    }
}
